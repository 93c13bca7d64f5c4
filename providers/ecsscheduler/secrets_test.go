package ecsscheduler_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/google/go-cmp/cmp"

	"github.com/convox-go/convox"
	"github.com/convox-go/convox/internal/awstest"
	"github.com/convox-go/convox/internal/ecstest"
	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/dynamostore"
	"github.com/convox-go/convox/providers/ecsscheduler"
	"github.com/convox-go/convox/providers/fake"
)

// wire records the operation name and the bytes of every request a
// client sends (URL and body, as signed), through the client's middleware
// stack, so a test can search everything that left the program.
type wire struct {
	mu   sync.Mutex
	reqs []sent
}

type sent struct {
	op   string
	data []byte
}

// AddTo installs the recorder; it fits aws.Config.APIOptions.
func (w *wire) AddTo(stack *middleware.Stack) error {
	return stack.Finalize.Add(middleware.FinalizeMiddlewareFunc("wire", func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
		req, ok := in.Request.(*smithyhttp.Request)
		if !ok {
			return next.HandleFinalize(ctx, in)
		}
		var body []byte
		if s := req.GetStream(); s != nil {
			b, err := io.ReadAll(s)
			if err != nil {
				return middleware.FinalizeOutput{}, middleware.Metadata{}, err
			}
			body = b
			if in.Request, err = req.SetStream(bytes.NewReader(b)); err != nil {
				return middleware.FinalizeOutput{}, middleware.Metadata{}, err
			}
		}
		data := append([]byte(req.URL.String()+"\n"), body...)
		w.mu.Lock()
		w.reqs = append(w.reqs, sent{op: middleware.GetOperationName(ctx), data: data})
		w.mu.Unlock()
		return next.HandleFinalize(ctx, in)
	}), middleware.After)
}

// carrying returns the operations, one per request, whose request holds
// value: in its bytes, or in a base64 string of its JSON body decoded (how
// DynamoDB sends binary attributes).
func (w *wire) carrying(value string) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var ops []string
	for _, r := range w.reqs {
		if bytes.Contains(r.data, []byte(value)) || inBase64(r.data, value) {
			ops = append(ops, r.op)
		}
	}
	return ops
}

func (w *wire) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.reqs)
}

func inBase64(data []byte, value string) bool {
	_, body, _ := bytes.Cut(data, []byte("\n"))
	var v any
	if json.Unmarshal(body, &v) != nil {
		return false
	}
	found := false
	var walk func(any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for _, x := range v {
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		case string:
			if b, err := base64.StdEncoding.DecodeString(v); err == nil && strings.Contains(string(b), value) {
				found = true
			}
		}
	}
	walk(v)
	return found
}

// secretRack is a scheduler keeping secrets in moto's SSM, running tasks
// on the ecstest server, with every SSM and ECS request recorded.
type secretRack struct {
	sch  *ecsscheduler.Scheduler
	ecs  *ecs.Client
	ssm  *ssm.Client
	wire *wire
	pre  string // the parameter prefix
}

func newSecretRack(t *testing.T) *secretRack {
	t.Helper()
	e := awstest.EmulatorOf(t, awstest.Moto)
	w := &wire{}
	srv := ecstest.New(t, &ecstest.Options{AutoStep: true})
	ecsCfg := awstest.ConfigFor(srv.URL)
	ecsCfg.APIOptions = append(ecsCfg.APIOptions, w.AddTo)
	ssmCfg := e.Config()
	ssmCfg.APIOptions = append(ssmCfg.APIOptions, w.AddTo)
	r := &secretRack{ecs: ecs.NewFromConfig(ecsCfg), ssm: ssm.NewFromConfig(ssmCfg), wire: w}
	cl := awstest.Name(t, "cl")
	r.pre = "/convox/" + cl
	r.sch = ecsscheduler.New(r.ecs, &ecsscheduler.Options{Cluster: cl, Subnets: []string{"subnet-1"}, SSM: r.ssm})
	return r
}

// parameters returns the names of the parameters under path.
func (r *secretRack) parameters(t *testing.T, path string) []string {
	t.Helper()
	var names []string
	p := ssm.NewGetParametersByPathPaginator(r.ssm, &ssm.GetParametersByPathInput{Path: aws.String(path), Recursive: aws.Bool(true)})
	for p.HasMorePages() {
		out, err := p.NextPage(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		for _, pm := range out.Parameters {
			names = append(names, aws.ToString(pm.Name))
		}
	}
	slices.Sort(names)
	return names
}

// containerSecrets returns the secrets and environment names of the task
// definition a service of the app runs.
func (r *secretRack) taskDefinition(t *testing.T, family string) (secrets map[string]string, env []string) {
	t.Helper()
	out, err := r.ecs.DescribeTaskDefinition(t.Context(), &ecs.DescribeTaskDefinitionInput{TaskDefinition: aws.String(family)})
	if err != nil {
		t.Fatal(err)
	}
	c := out.TaskDefinition.ContainerDefinitions[0]
	secrets = map[string]string{}
	for _, s := range c.Secrets {
		secrets[aws.ToString(s.Name)] = aws.ToString(s.ValueFrom)
	}
	for _, kv := range c.Environment {
		env = append(env, aws.ToString(kv.Name)+"="+aws.ToString(kv.Value))
	}
	return secrets, env
}

func TestKeepSecretStoresOneSecureStringPerValue(t *testing.T) {
	r := newSecretRack(t)
	const value = "s3cr3t-keep-value"
	ref, err := r.sch.KeepSecret(t.Context(), "shop", "API_KEY", value)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(ref, r.pre+"/shop/API_KEY/") {
		t.Errorf("reference %q is not under %s/shop/API_KEY/", ref, r.pre)
	}
	out, err := r.ssm.GetParameter(t.Context(), &ssm.GetParameterInput{Name: aws.String(ref), WithDecryption: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	if got := aws.ToString(out.Parameter.Value); got != value || out.Parameter.Type != ssmtypes.ParameterTypeSecureString {
		t.Errorf("parameter = %s %q, want SecureString holding the value", out.Parameter.Type, got)
	}
	again, err := r.sch.KeepSecret(t.Context(), "shop", "API_KEY", value)
	if err != nil {
		t.Fatal(err)
	}
	if again == ref {
		t.Errorf("two KeepSecret calls returned one reference %q: a reference must name one stored copy for good", ref)
	}
	if diff := cmp.Diff([]string{"PutParameter", "PutParameter"}, r.wire.carrying(value)); diff != "" {
		t.Errorf("requests carrying the value (-want +got):\n%s", diff)
	}
}

func TestSecretsAreRefusedBeforeAnySideEffect(t *testing.T) {
	r := newSecretRack(t)
	d := providers.Desired{App: "shop", Release: "R1", Token: "t1", Image: image, Processes: []providers.Process{worker}, Secret: []string{"API_KEY"}}
	for _, tt := range []struct {
		name string
		env  map[string]string
		refs map[string]string
	}{
		{"a reference outside the app's path is refused", nil, map[string]string{"API_KEY": r.pre + "/other/API_KEY/0123456789abcdef"}},
		{"a reference outside the rack's path is refused", nil, map[string]string{"API_KEY": "/elsewhere/shop/API_KEY/x"}},
		{"a value longer than a parameter holds is refused", map[string]string{"API_KEY": strings.Repeat("x", ecsscheduler.MaxSecretValue+1)}, nil},
		{"an empty value, which SSM refuses, is refused", map[string]string{"API_KEY": ""}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d := d
			d.Env, d.SecretRefs = tt.env, tt.refs
			before := r.wire.count()
			_, err := r.sch.Apply(t.Context(), d)
			if !errors.Is(err, providers.ErrInvalid) {
				t.Fatalf("Apply = %v, want ErrInvalid", err)
			}
			if n := r.wire.count() - before; n != 0 {
				t.Errorf("Apply sent %d requests before refusing", n)
			}
		})
	}
	t.Run("a value longer than a parameter holds is refused by KeepSecret", func(t *testing.T) {
		before := r.wire.count()
		if _, err := r.sch.KeepSecret(t.Context(), "shop", "API_KEY", strings.Repeat("x", ecsscheduler.MaxSecretValue+1)); !errors.Is(err, providers.ErrInvalid) {
			t.Fatalf("KeepSecret = %v, want ErrInvalid", err)
		}
		if n := r.wire.count() - before; n != 0 {
			t.Errorf("KeepSecret sent %d requests before refusing", n)
		}
	})
}

func TestKeepSecretWithoutSSMIsUnimplemented(t *testing.T) {
	sch := ecsscheduler.New(ecs.NewFromConfig(awstest.ConfigFor("http://127.0.0.1:1")), nil)
	if _, err := sch.KeepSecret(t.Context(), "shop", "API_KEY", "v"); !errors.Is(err, providers.ErrUnimplemented) {
		t.Fatalf("KeepSecret without Options.SSM = %v, want ErrUnimplemented", err)
	}
}

// TestSecretValuesReachAWSOnlyInTheRequestThatStoresThem deploys through
// the root client with the store on DynamoDB and secrets in SSM (moto),
// tasks on the ecstest server, and searches every request of the three
// clients for the secret values.
func TestSecretValuesReachAWSOnlyInTheRequestThatStoresThem(t *testing.T) {
	r := newSecretRack(t)
	e := awstest.EmulatorOf(t, awstest.Moto)
	ctx := t.Context()
	dynCfg := e.Config()
	dynCfg.APIOptions = append(dynCfg.APIOptions, r.wire.AddTo)
	dyn := dynamodb.NewFromConfig(dynCfg)
	table := awstest.Name(t, "secrets")
	if err := dynamostore.EnsureTable(ctx, dyn, table); err != nil {
		t.Fatal(err)
	}
	store := awstest.AtomicWrites(dynamostore.New(dyn, table, nil))

	app := awstest.Name(t, "shop")
	others := fake.New(nil)
	others.Push(app, "v1", &fake.ImageConfig{Entrypoint: []string{"/app/worker"}})
	c, err := convox.New(convox.Rack{Registry: others.Registry(), Scheduler: r.sch, Balancer: others.Balancer(), Logs: others.Logs(), Store: store},
		&convox.Options{PollInterval: 5 * time.Millisecond, MaxPollInterval: 50 * time.Millisecond, Timeout: 2 * time.Minute, CompensateTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateApp(ctx, app, nil); err != nil {
		t.Fatal(err)
	}
	const first, second = "first-s3cr3t-7f1c", "second-s3cr3t-9a2d"
	procs := []convox.Process{{Name: "worker", Count: 1}}
	r1, err := c.App(app).Deploy(ctx, convox.ReleaseSpec{Image: app + ":v1", Env: map[string]string{"MODE": "a"}, Secrets: map[string]convox.Secret{"API_KEY": first}, Processes: procs}, nil)
	if err != nil {
		t.Fatalf("deploy with a secret: %v", err)
	}
	family := strings.TrimPrefix(r.pre, "/convox/") + "_" + app + "_worker" // the worker's task definitions
	secrets, env := r.taskDefinition(t, family)
	ref := secrets["API_KEY"]
	if !strings.HasPrefix(ref, r.pre+"/"+app+"/API_KEY/") {
		t.Errorf("task definition secrets = %v, want API_KEY from a parameter under %s/%s/API_KEY/", secrets, r.pre, app)
	}
	if diff := cmp.Diff([]string{"MODE=a"}, env); diff != "" {
		t.Errorf("task definition environment (-want +got):\n%s", diff)
	}
	if got := string(r1.Secrets["API_KEY"]); got != ref {
		t.Errorf("release secret = %q, want the reference %q", got, ref)
	}

	// A plain change copies the secret's reference: nothing is stored again.
	if _, err := c.App(app).SetEnv(ctx, map[string]string{"MODE": "b"}, nil, nil); err != nil {
		t.Fatalf("SetEnv: %v", err)
	}
	if got, _ := r.taskDefinition(t, family); got["API_KEY"] != ref {
		t.Errorf("after a plain change, API_KEY comes from %q, want the same parameter %q", got["API_KEY"], ref)
	}
	// A new value is stored once, as a new parameter.
	if _, err := c.App(app).SetEnv(ctx, nil, map[string]convox.Secret{"API_KEY": second}, nil); err != nil {
		t.Fatalf("SetEnv of a secret: %v", err)
	}
	got, _ := r.taskDefinition(t, family)
	if got["API_KEY"] == ref || !strings.HasPrefix(got["API_KEY"], r.pre+"/"+app+"/API_KEY/") {
		t.Errorf("after a new value, API_KEY comes from %q, want a new parameter of the app", got["API_KEY"])
	}
	if diff := cmp.Diff(slices.Sorted(slices.Values([]string{got["API_KEY"], ref})), r.parameters(t, r.pre+"/"+app)); diff != "" {
		t.Errorf("the app's parameters (-want +got):\n%s", diff)
	}

	for _, v := range []string{first, second} {
		if diff := cmp.Diff([]string{"PutParameter"}, r.wire.carrying(v)); diff != "" {
			t.Errorf("requests carrying a secret value (-want +got):\n%s", diff)
		}
	}
	if ops := r.wire.carrying(ref); !slices.Contains(ops, "PutItem") && !slices.Contains(ops, "UpdateItem") {
		t.Errorf("no DynamoDB write carried the reference %q (requests: %v): the store should hold it", ref, ops)
	}

	if err := c.DeleteApp(ctx, app); err != nil {
		t.Fatalf("DeleteApp: %v", err)
	}
	if left := r.parameters(t, r.pre+"/"+app); len(left) != 0 {
		t.Errorf("parameters left after the app was deleted: %v", left)
	}
}

// TestExecutionRolePolicyListsExactlyWhatTheRoleReads checks the
// document: the execution role's actions on every resource, and
// ssm:GetParameters on the rack's parameters only.
func TestExecutionRolePolicyListsExactlyWhatTheRoleReads(t *testing.T) {
	for _, tt := range []struct {
		name, region, prefix, resource string
	}{
		{"the default prefix is the cluster's", "us-east-1", "", "arn:aws:ssm:us-east-1:123456789012:parameter/convox/prod/*"},
		{"a prefix of its own", "eu-west-1", "/teams/a", "arn:aws:ssm:eu-west-1:123456789012:parameter/teams/a/*"},
		{"the China partition", "cn-north-1", "", "arn:aws-cn:ssm:cn-north-1:123456789012:parameter/convox/prod/*"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sch := ecsscheduler.New(ecs.NewFromConfig(awstest.ConfigFor("http://127.0.0.1:1")), &ecsscheduler.Options{Cluster: "prod", Region: tt.region, ParameterPrefix: tt.prefix})
			b, err := sch.ExecutionRolePolicy("123456789012")
			if err != nil {
				t.Fatal(err)
			}
			want := policyDoc{Version: "2012-10-17", Statement: []policyStatement{
				{Effect: "Allow", Action: ecsscheduler.ExecutionRoleActions(), Resource: "*"},
				{Effect: "Allow", Action: []string{"ssm:GetParameters"}, Resource: tt.resource},
			}}
			var got policyDoc
			if err := json.Unmarshal(b, &got); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("policy (-want +got):\n%s", diff)
			}
		})
	}
}

type policyDoc struct {
	Version   string
	Statement []policyStatement
}

type policyStatement struct {
	Effect   string
	Action   []string
	Resource string
}

// TestExecutionRolePolicyReadsTheSecretsUnderIAMEnforcement checks, with
// IAM enforced (moto), that the policy's actions let the execution role
// read the parameters a task definition names, and nothing more.
func TestExecutionRolePolicyReadsTheSecretsUnderIAMEnforcement(t *testing.T) {
	admin := awstest.MotoIAM(t)
	ctx := t.Context()
	cl := awstest.Name(t, "cl")
	sch := ecsscheduler.New(ecs.NewFromConfig(admin), &ecsscheduler.Options{Cluster: cl, Region: awstest.Region, SSM: ssm.NewFromConfig(admin)})
	ref, err := sch.KeepSecret(ctx, "shop", "API_KEY", "v1")
	if err != nil {
		t.Fatal(err)
	}
	b, err := sch.ExecutionRolePolicy("123456789012")
	if err != nil {
		t.Fatal(err)
	}
	// On AWS, ssm:GetParameters is authorized per parameter ARN: "the task
	// execution role ... ssm:GetParameters ... Resource
	// arn:aws:ssm:region:aws_account_id:parameter/parameter_name" (Amazon
	// ECS Developer Guide, "Amazon ECS task execution IAM role"). moto
	// authorizes every action of these services against the resource "*"
	// (its core/authorization.py), which no scoped Resource matches: on
	// moto the statement's Resource is widened to "*", so what is checked
	// here is the policy's actions; the scoping is checked by
	// TestExecutionRolePolicyListsExactlyWhatTheRoleReads.
	var doc policyDoc
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	doc.Statement[1].Resource = "*"
	policy, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	role := ssm.NewFromConfig(awstest.NewIAMUser(t, admin, awstest.Name(t, "exec"), policy))
	t.Run("the parameters a task definition names are read", func(t *testing.T) {
		out, err := role.GetParameters(ctx, &ssm.GetParametersInput{Names: []string{ref}, WithDecryption: aws.Bool(true)})
		if err != nil || len(out.Parameters) != 1 || aws.ToString(out.Parameters[0].Value) != "v1" {
			t.Fatalf("GetParameters = %v, %v; want the parameter", out, err)
		}
	})
	for _, tt := range []struct {
		name string
		call func() error
	}{
		{"writing a parameter is denied", func() error {
			_, err := role.PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String(ref), Value: aws.String("x"), Type: ssmtypes.ParameterTypeSecureString, Overwrite: aws.Bool(true)})
			return err
		}},
		{"reading a whole path is denied", func() error {
			_, err := role.GetParametersByPath(ctx, &ssm.GetParametersByPathInput{Path: aws.String("/convox")})
			return err
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(); err == nil || !strings.Contains(err.Error(), "403") {
				t.Fatalf("err = %v; want an HTTP 403 denial", err)
			}
		})
	}
}

func TestExecutionRolePolicyRefusesABadAccount(t *testing.T) {
	sch := ecsscheduler.New(ecs.NewFromConfig(awstest.ConfigFor("http://127.0.0.1:1")), &ecsscheduler.Options{Region: "us-east-1"})
	for _, account := range []string{"", "12345", "12345678901x", "1234567890123"} {
		if _, err := sch.ExecutionRolePolicy(account); !errors.Is(err, providers.ErrInvalid) {
			t.Errorf("ExecutionRolePolicy(%q) = %v, want ErrInvalid", account, err)
		}
	}
}
