package ecsscheduler

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/convox-go/convox/internal/awserr"
	"github.com/convox-go/convox/providers"
)

// SSMAPI is the part of the SSM client the scheduler keeps secrets with;
// *ssm.Client implements it.
type SSMAPI interface {
	PutParameter(context.Context, *ssm.PutParameterInput, ...func(*ssm.Options)) (*ssm.PutParameterOutput, error)
	DescribeParameters(context.Context, *ssm.DescribeParametersInput, ...func(*ssm.Options)) (*ssm.DescribeParametersOutput, error)
	DeleteParameters(context.Context, *ssm.DeleteParametersInput, ...func(*ssm.Options)) (*ssm.DeleteParametersOutput, error)
}

// MaxSecretValue is the largest secret value a standard-tier SSM
// parameter holds (4 KB); KeepSecret refuses longer ones.
const MaxSecretValue = 4096

var _ providers.SecretKeeper = (*Scheduler)(nil)

// parameterPath is the SSM path under which the app's secrets are kept.
func (s *Scheduler) parameterPath(app string) string {
	return s.opts.ParameterPrefix + "/" + app
}

// KeepSecret stores value as a new SecureString parameter
// "<ParameterPrefix>/<app>/<name>/<16 random hex digits>" and returns the
// parameter's name, which task definitions name in their secrets. It is
// the only call that sends the value to AWS. Without Options.SSM it
// returns an error matching providers.ErrUnimplemented (the root then
// keeps the value itself, as it does for schedulers that keep no secrets).
func (s *Scheduler) KeepSecret(ctx context.Context, app, name, value string) (string, error) {
	if s.opts.SSM == nil {
		return "", fmt.Errorf("%w: the ECS scheduler keeps secrets only with an SSM client (Options.SSM)", providers.ErrUnimplemented)
	}
	if err := providers.ValidateName("app", app, providers.MaxAppName); err != nil {
		return "", err
	}
	if err := providers.ValidateEnvName(name); err != nil {
		return "", err
	}
	if len(value) > MaxSecretValue {
		return "", providers.Invalidf("secret %s: its value is %d bytes; an SSM parameter holds at most %d", name, len(value), MaxSecretValue)
	}
	if value == "" {
		// SSM refuses empty values (Value has a minimum length of 1).
		return "", providers.Invalidf("secret %s: its value is empty; an SSM parameter cannot be", name)
	}
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	param := s.parameterPath(app) + "/" + name + "/" + hex.EncodeToString(b)
	if err := s.putParameter(ctx, param, value, false); err != nil {
		return "", err
	}
	return param, nil
}

func (s *Scheduler) putParameter(ctx context.Context, param, value string, overwrite bool) error {
	_, err := s.opts.SSM.PutParameter(ctx, &ssm.PutParameterInput{
		Name:      aws.String(param),
		Value:     aws.String(value),
		Type:      ssmtypes.ParameterTypeSecureString,
		Tier:      ssmtypes.ParameterTierStandard,
		Overwrite: aws.Bool(overwrite),
	})
	if err != nil {
		return awserr.Wrap(fmt.Sprintf("put parameter %q", param), err)
	}
	return nil
}

// environment splits a release environment into plain variables and
// secret references. With Options.SSM, a secret given by value (not kept
// by KeepSecret first) is stored under
// "<ParameterPrefix>/<app>/<name>/r<hash of the release>", overwritten
// with the same value when the release is applied again, so the task
// definition never holds a secret value. Without Options.SSM, secret
// values stay plain variables. Every reference must name a parameter of
// the app: the execution role reads only the rack's parameters.
func (s *Scheduler) environment(ctx context.Context, app, release string, env map[string]string, secret []string, refs map[string]string) (map[string]string, map[string]string, error) {
	if err := s.checkSecrets(app, env, secret, refs); err != nil {
		return nil, nil, err
	}
	if s.opts.SSM == nil || len(secret) == 0 {
		return env, refs, nil
	}
	var kept []string
	for _, k := range secret {
		if _, ok := env[k]; ok {
			kept = append(kept, k)
		}
	}
	if len(kept) == 0 {
		return env, refs, nil
	}
	plain, all := maps.Clone(env), maps.Clone(refs)
	if all == nil {
		all = map[string]string{}
	}
	for _, k := range slices.Sorted(slices.Values(kept)) {
		param := s.parameterPath(app) + "/" + k + "/r" + hashed(release)[:16]
		if err := s.putParameter(ctx, param, env[k], true); err != nil {
			return nil, nil, err
		}
		delete(plain, k)
		all[k] = param
	}
	return plain, all, nil
}

// checkSecrets checks, before any side effect, that every reference
// names a parameter of the app (the execution role reads only the
// rack's) and, with Options.SSM, that every secret given by value fits a
// parameter.
func (s *Scheduler) checkSecrets(app string, env map[string]string, secret []string, refs map[string]string) error {
	for _, k := range slices.Sorted(maps.Keys(refs)) {
		if !strings.HasPrefix(refs[k], s.parameterPath(app)+"/") {
			return providers.Invalidf("secret %s: reference %q is not a parameter of app %s under %s", k, refs[k], app, s.parameterPath(app))
		}
	}
	if s.opts.SSM == nil {
		return nil
	}
	for _, k := range secret {
		if v, ok := env[k]; ok && (len(v) > MaxSecretValue || v == "") {
			return providers.Invalidf("secret %s: its value is %d bytes; an SSM parameter holds 1 to %d", k, len(v), MaxSecretValue)
		}
	}
	return nil
}

// deleteSecrets deletes every parameter under the app's path, ten per
// DeleteParameters call (the API's maximum).
func (s *Scheduler) deleteSecrets(ctx context.Context, app string) error {
	if s.opts.SSM == nil {
		return nil
	}
	path := s.parameterPath(app)
	var token *string
	for {
		// Deleting shrinks the listing: after a deletion, read the first
		// page again, until the listing is empty.
		out, err := s.opts.SSM.DescribeParameters(ctx, &ssm.DescribeParametersInput{
			ParameterFilters: []ssmtypes.ParameterStringFilter{{Key: aws.String("Path"), Option: aws.String("Recursive"), Values: []string{path}}},
			MaxResults:       aws.Int32(10),
			NextToken:        token,
		})
		if err != nil {
			return awserr.Wrap(fmt.Sprintf("describe parameters under %q", path), err)
		}
		var names []string
		for _, p := range out.Parameters {
			if n := aws.ToString(p.Name); strings.HasPrefix(n, path+"/") {
				names = append(names, n)
			}
		}
		if len(names) == 0 {
			if aws.ToString(out.NextToken) == "" {
				return nil
			}
			// A page of nothing but a token: follow it.
			token = out.NextToken
			continue
		}
		token = nil
		if _, err := s.opts.SSM.DeleteParameters(ctx, &ssm.DeleteParametersInput{Names: names}); err != nil {
			return awserr.Wrap(fmt.Sprintf("delete parameters under %q", path), err)
		}
	}
}

// ExecutionRolePolicy returns the IAM policy document (JSON) of the task
// execution role for account: pulling images from ECR and writing logs
// (on every resource, as ECS's managed AmazonECSTaskExecutionRolePolicy
// does), and ssm:GetParameters on exactly the rack's secret parameters,
// "arn:<partition>:ssm:<region>:<account>:parameter<ParameterPrefix>/*".
// Secrets are encrypted with the AWS managed key aws/ssm, which needs no
// kms:Decrypt grant. An account that is not twelve digits returns an
// error matching providers.ErrInvalid.
func (s *Scheduler) ExecutionRolePolicy(account string) ([]byte, error) {
	if len(account) != 12 || strings.Trim(account, "0123456789") != "" {
		return nil, providers.Invalidf("account %q is not a 12-digit AWS account ID", account)
	}
	if s.opts.Region == "" {
		return nil, providers.Invalidf("the scheduler has no region (Options.Region)")
	}
	type statement struct {
		Effect   string
		Action   []string
		Resource string
	}
	doc := struct {
		Version   string
		Statement []statement
	}{Version: "2012-10-17", Statement: []statement{
		{Effect: "Allow", Action: ExecutionRoleActions(), Resource: "*"},
		{Effect: "Allow", Action: []string{"ssm:GetParameters"}, Resource: fmt.Sprintf("arn:%s:ssm:%s:%s:parameter%s/*", partition(s.opts.Region), s.opts.Region, account, s.opts.ParameterPrefix)},
	}}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// ExecutionRoleActions returns the actions the task execution role needs
// on every resource: the package documentation's list, which a test keeps
// equal to this one. ExecutionRolePolicy adds ssm:GetParameters on the
// rack's parameters.
func ExecutionRoleActions() []string {
	return []string{
		"ecr:GetAuthorizationToken",
		"ecr:BatchGetImage",
		"ecr:GetDownloadUrlForLayer",
		"logs:CreateLogGroup",
		"logs:CreateLogStream",
		"logs:PutLogEvents",
	}
}

// partition returns the AWS partition of a region.
func partition(region string) string {
	switch {
	case strings.HasPrefix(region, "cn-"):
		return "aws-cn"
	case strings.HasPrefix(region, "us-gov-"):
		return "aws-us-gov"
	}
	return "aws"
}
