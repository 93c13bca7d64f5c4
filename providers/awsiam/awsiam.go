// Package awsiam builds the least-privilege IAM policy for the AWS
// providers a program uses.
//
// Each AWS provider package exports the IAM actions it calls as
// Permissions, the same list its documentation gives under Permissions.
// Policy merges the lists of the chosen providers into one policy
// document, sorted and without duplicates, ready to print or to hand to
// "aws iam create-policy":
//
//	policy, err := awsiam.Policy(
//		ecsscheduler.Permissions(),
//		albbalancer.Permissions(),
//		cwlogs.Permissions(),
//		dynamostore.Permissions(),
//		ecrregistry.Permissions(),
//	)
//	if err != nil {
//		return err
//	}
//	os.Stdout.Write(policy)
//
// The document allows the actions on every resource ("*"). Narrow its
// Resource to the rack's own resources (the ECS cluster and services, the
// load balancers, the /convox/* log groups or the Kinesis stream, the
// DynamoDB table, the ECR repositories, and for iam:PassRole the task
// roles) before attaching it: each provider's documentation says which
// resources its actions apply to. Actions a provider's documentation
// mentions for one-time setup or for other principals (creating the
// DynamoDB table, the ECS task execution role, pushing images, the load
// balancers' service-linked role, a KMS key) are not in its list.
package awsiam

import (
	"encoding/json"
	"regexp"
	"slices"
	"strings"

	"github.com/convox-go/convox/providers"
)

// Version is the IAM policy language version of the documents Policy returns.
const Version = "2012-10-17"

// document is an IAM policy document with one statement.
type document struct {
	Version   string      `json:"Version"`
	Statement []statement `json:"Statement"`
}

type statement struct {
	Effect   string   `json:"Effect"`
	Action   []string `json:"Action"`
	Resource string   `json:"Resource"`
}

// actionRE matches an IAM action: a service prefix, a colon and an action
// name, which may hold the wildcards * and ?.
var actionRE = regexp.MustCompile(`^[A-Za-z0-9-]+:[A-Za-z0-9*?]+$`)

// Policy returns an IAM policy document (JSON, indented, ending in a
// newline) with one statement allowing every action of the given lists on
// Resource "*". Callers should narrow the Resource to their rack's
// resources before use (see the package documentation). The actions are
// sorted and each appears once; IAM compares actions case-insensitively,
// so actions differing only in case are one, spelled as first given. An action that is not of the
// form "service:Action", or no action at all, returns an error matching
// providers.ErrInvalid.
func Policy(actions ...[]string) ([]byte, error) {
	var all []string
	seen := map[string]bool{}
	for _, list := range actions {
		for _, a := range list {
			if !actionRE.MatchString(a) {
				return nil, providers.Invalidf("IAM action %q is not of the form service:Action", a)
			}
			if key := strings.ToLower(a); !seen[key] {
				seen[key] = true
				all = append(all, a)
			}
		}
	}
	if len(all) == 0 {
		return nil, providers.Invalidf("a policy needs at least one IAM action")
	}
	slices.SortFunc(all, func(x, y string) int { return strings.Compare(strings.ToLower(x), strings.ToLower(y)) })
	b, err := json.MarshalIndent(document{
		Version:   Version,
		Statement: []statement{{Effect: "Allow", Action: all, Resource: "*"}},
	}, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}
