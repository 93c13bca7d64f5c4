package awstest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// MotoIAMAdminEnv names the environment variable holding the access key
// of the administrator of moto's IAM enforcing process, as
// "ACCESS_KEY_ID:SECRET". scripts/moto creates that user with the
// process's first actions (INITIAL_NO_AUTH_ACTION_COUNT) and sets it.
const MotoIAMAdminEnv = "CONVOX_TEST_MOTO_IAM_ADMIN"

// MotoIAM returns the configuration of the administrator of moto's IAM
// enforcing process (MotoIAMEnv), which may call every action, or skips
// the test when that process is not running. Every request to that
// process must be signed by a user whose policies allow it.
func MotoIAM(t testing.TB) aws.Config {
	t.Helper()
	endpoint, admin := os.Getenv(MotoIAMEnv), os.Getenv(MotoIAMAdminEnv)
	if endpoint == "" || admin == "" {
		t.Skipf("%s or %s is unset: this test needs moto with IAM enforcement; run scripts/test, or eval \"$(scripts/moto start)\" first", MotoIAMEnv, MotoIAMAdminEnv)
	}
	id, secret, ok := strings.Cut(admin, ":")
	if !ok {
		t.Fatalf("%s is not ACCESS_KEY_ID:SECRET", MotoIAMAdminEnv)
	}
	cfg := ConfigFor(endpoint)
	cfg.Credentials = credentials.NewStaticCredentialsProvider(id, secret, "")
	return cfg
}

// NewIAMUser creates an IAM user named name holding exactly policy (one
// inline policy) through admin, and returns a configuration signed with a
// new access key of that user.
func NewIAMUser(t testing.TB, admin aws.Config, name string, policy []byte) aws.Config {
	t.Helper()
	ctx := context.Background()
	if _, err := Query(ctx, admin, "iam", url.Values{"Action": {"CreateUser"}, "UserName": {name}}); err != nil {
		t.Fatalf("CreateUser %s: %v", name, err)
	}
	if _, err := Query(ctx, admin, "iam", url.Values{"Action": {"PutUserPolicy"}, "UserName": {name}, "PolicyName": {name}, "PolicyDocument": {string(policy)}}); err != nil {
		t.Fatalf("PutUserPolicy %s: %v", name, err)
	}
	body, err := Query(ctx, admin, "iam", url.Values{"Action": {"CreateAccessKey"}, "UserName": {name}})
	if err != nil {
		t.Fatalf("CreateAccessKey %s: %v", name, err)
	}
	var out struct {
		ID     string `xml:"CreateAccessKeyResult>AccessKey>AccessKeyId"`
		Secret string `xml:"CreateAccessKeyResult>AccessKey>SecretAccessKey"`
	}
	if err := xml.Unmarshal(body, &out); err != nil || out.ID == "" {
		t.Fatalf("CreateAccessKey %s: no key in %q (%v)", name, body, err)
	}
	cfg := admin.Copy()
	cfg.APIOptions = nil
	cfg.Credentials = credentials.NewStaticCredentialsProvider(out.ID, out.Secret, "")
	return cfg
}

// queryVersions are the API versions of the query-protocol services
// Query calls.
var queryVersions = map[string]string{"iam": "2010-05-08", "ec2": "2016-11-15"}

// Query makes one call of a query-protocol AWS API (service "iam" or
// "ec2") to cfg's endpoint, signed with cfg's credentials, for the few
// test set-up calls whose SDK clients the module does not otherwise need.
// params holds Action and its parameters. It returns the response body,
// or an error with the body when the status is not 200.
func Query(ctx context.Context, cfg aws.Config, service string, params url.Values) ([]byte, error) {
	version, ok := queryVersions[service]
	if !ok {
		return nil, fmt.Errorf("awstest.Query: unknown service %q", service)
	}
	params = cloneValues(params)
	params.Set("Version", version)
	body := []byte(params.Encode())
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, aws.ToString(cfg.BaseEndpoint)+"/", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	creds, err := cfg.Credentials.Retrieve(ctx)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(body)
	if err := v4.NewSigner().SignHTTP(ctx, creds, req, hex.EncodeToString(sum[:]), service, cfg.Region, time.Now()); err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return out, fmt.Errorf("%s %s: status %d: %s", service, params.Get("Action"), resp.StatusCode, out)
	}
	return out, nil
}

func cloneValues(v url.Values) url.Values {
	out := url.Values{}
	for k, vs := range v {
		out[k] = append([]string(nil), vs...)
	}
	return out
}

// Denials records the operations an endpoint refused with HTTP 403 (as
// moto refuses an action a caller's policies do not allow, on every
// protocol). It is safe for concurrent use.
type Denials struct {
	mu  sync.Mutex
	ops []string
}

// AddTo installs the recorder in a middleware stack; its signature fits
// aws.Config.APIOptions.
func (d *Denials) AddTo(stack *middleware.Stack) error {
	return stack.Deserialize.Add(middleware.DeserializeMiddlewareFunc("awstest.Denials",
		func(ctx context.Context, in middleware.DeserializeInput, next middleware.DeserializeHandler) (middleware.DeserializeOutput, middleware.Metadata, error) {
			out, md, err := next.HandleDeserialize(ctx, in)
			if resp, ok := out.RawResponse.(*smithyhttp.Response); ok && resp.StatusCode == http.StatusForbidden {
				d.mu.Lock()
				d.ops = append(d.ops, middleware.GetOperationName(ctx))
				d.mu.Unlock()
			}
			return out, md, err
		}), middleware.After)
}

// Ops returns the refused operations, sorted, each once.
func (d *Denials) Ops() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := slices.Clone(d.ops)
	slices.Sort(out)
	return slices.Compact(out)
}

// Subnets creates a VPC with two subnets in two availability zones
// through the EC2 API at cfg (moto's; kumo has no EC2), as a load
// balancer needs, and returns the subnets' and the VPC's default security
// group's IDs.
func Subnets(t testing.TB, cfg aws.Config) (subnets []string, securityGroup string) {
	t.Helper()
	ctx := context.Background()
	body, err := Query(ctx, cfg, "ec2", url.Values{"Action": {"CreateVpc"}, "CidrBlock": {"10.0.0.0/16"}})
	if err != nil {
		t.Fatalf("CreateVpc: %v", err)
	}
	var vpc struct {
		ID string `xml:"vpc>vpcId"`
	}
	if err := xml.Unmarshal(body, &vpc); err != nil || vpc.ID == "" {
		t.Fatalf("CreateVpc: no VPC in %q (%v)", body, err)
	}
	for i, zone := range []string{Region + "a", Region + "b"} {
		body, err := Query(ctx, cfg, "ec2", url.Values{"Action": {"CreateSubnet"}, "VpcId": {vpc.ID}, "CidrBlock": {fmt.Sprintf("10.0.%d.0/24", i)}, "AvailabilityZone": {zone}})
		if err != nil {
			t.Fatalf("CreateSubnet: %v", err)
		}
		var sn struct {
			ID string `xml:"subnet>subnetId"`
		}
		if err := xml.Unmarshal(body, &sn); err != nil || sn.ID == "" {
			t.Fatalf("CreateSubnet: no subnet in %q (%v)", body, err)
		}
		subnets = append(subnets, sn.ID)
	}
	body, err = Query(ctx, cfg, "ec2", url.Values{"Action": {"DescribeSecurityGroups"}, "Filter.1.Name": {"vpc-id"}, "Filter.1.Value.1": {vpc.ID}})
	if err != nil {
		t.Fatalf("DescribeSecurityGroups: %v", err)
	}
	var sgs struct {
		IDs []string `xml:"securityGroupInfo>item>groupId"`
	}
	if err := xml.Unmarshal(body, &sgs); err != nil || len(sgs.IDs) == 0 {
		t.Fatalf("DescribeSecurityGroups: no group in %q (%v)", body, err)
	}
	return subnets, sgs.IDs[0]
}
