package cfnstack_test

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/ecs"
	elbv2 "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	"github.com/google/go-cmp/cmp"

	"github.com/convox-go/convox/internal/awstest"
	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/albbalancer"
	"github.com/convox-go/convox/providers/ecsscheduler"
)

// mode is one way of running the rack's apps: a scheduler and a balancer
// whose clients share one call counter.
type mode struct {
	name  string
	sch   providers.Scheduler
	bal   providers.Balancer
	calls *awstest.Counter
}

// readPrefixes start the names of the operations that change nothing.
var readPrefixes = []string{"Describe", "List", "Get"}

// tally splits counted calls into writes and reads.
func tally(c map[string]int) (writes, reads int, ops []string) {
	for _, op := range slices.Sorted(maps.Keys(c)) {
		if slices.ContainsFunc(readPrefixes, func(p string) bool { return strings.HasPrefix(op, p) }) {
			reads += c[op]
		} else {
			writes += c[op]
			ops = append(ops, fmt.Sprintf("%s×%d", op, c[op]))
		}
	}
	return writes, reads, ops
}

// TestAPICallsPerDeployAndRollback counts, in one run on moto, the API
// calls of a first deploy, a second deploy (new image) and a rollback to
// the first release, for direct ECS/ALB (ecsscheduler + albbalancer) and
// for the stack mode. Each step is what the root does once per deploy:
// EnsureRoute of the routed process, Apply, one Status. The table it logs
// is the one in README.md. The stack mode's CloudFormation writes are the
// rule checked: one stack call per deploy and per rollback.
func TestAPICallsPerDeployAndRollback(t *testing.T) {
	r := newRack(t, nil)
	cfg := awstest.EmulatorOf(t, awstest.Moto).Config()
	subnets, sg, _, _ := network(t, cfg)
	direct := mode{name: "ecsscheduler + albbalancer", calls: awstest.NewCounter()}
	dc := cfg.Copy()
	dc.APIOptions = append(dc.APIOptions, direct.calls.AddTo)
	direct.sch = ecsscheduler.New(ecs.NewFromConfig(dc), &ecsscheduler.Options{
		Cluster: awstest.Name(t, "direct"), Subnets: subnets, SecurityGroups: []string{sg}, ExecutionRoleARN: "arn:aws:iam::123456789012:role/exec",
	})
	direct.bal = albbalancer.New(elbv2.NewFromConfig(dc), &albbalancer.Options{
		LoadBalancer: awstest.Name(t, "alb"), Subnets: subnets, SecurityGroups: []string{sg}, Domain: "apps.example.com",
	})
	stack := mode{name: "cfnstack", sch: r.stack, bal: r.stack, calls: r.calls}

	var table []string
	stackWrites := map[string]map[string]int{}
	for _, m := range []mode{direct, stack} {
		app := awstest.Name(t, "cmp")
		t.Cleanup(func() { m.sch.Delete(t.Context(), app) })
		spec := providers.RouteSpec{App: app, Process: "web", Port: 8080, Protocol: providers.HTTP}
		var binding providers.Binding
		step := func(name string, d providers.Desired) {
			t.Helper()
			m.calls.Reset()
			rt, err := m.bal.EnsureRoute(t.Context(), spec)
			if err != nil {
				t.Fatalf("%s %s: EnsureRoute: %v", m.name, name, err)
			}
			binding = rt.Binding
			d.Bindings = map[string][]providers.Binding{"web": {binding}}
			if _, err := m.sch.Apply(t.Context(), d); err != nil {
				t.Fatalf("%s %s: Apply: %v", m.name, name, err)
			}
			if _, err := m.sch.Status(t.Context(), app); err != nil {
				t.Fatalf("%s %s: Status: %v", m.name, name, err)
			}
			counts := m.calls.Counts()
			w, rd, ops := tally(counts)
			table = append(table, fmt.Sprintf("| %s | %s | %d | %d | %s |", m.name, name, w, rd, strings.Join(ops, ", ")))
			if m.name == stack.name {
				cfn := map[string]int{}
				for _, op := range mutating {
					if counts[op] > 0 {
						cfn[op] = counts[op]
					}
				}
				stackWrites[name] = cfn
			}
		}
		step("first deploy", release(app, "R1", "t1", imageV1, map[string]string{"MODE": "a"}, 2, 1, providers.Binding{}))
		step("deploy", release(app, "R2", "t2", imageV2, map[string]string{"MODE": "b"}, 2, 1, providers.Binding{}))
		step("rollback", release(app, "R1", "t3", imageV1, map[string]string{"MODE": "a"}, 2, 1, providers.Binding{}))
	}
	t.Logf("API calls per step, one run on moto:\n| mode | step | writes | reads | write operations |\n|---|---|---|---|---|\n%s", strings.Join(table, "\n"))
	want := map[string]map[string]int{
		"first deploy": {"CreateStack": 1, "UpdateStack": 1},
		"deploy":       {"UpdateStack": 1},
		"rollback":     {"UpdateStack": 1},
	}
	if diff := cmp.Diff(want, stackWrites); diff != "" {
		t.Errorf("CloudFormation writes of the stack mode (-want +got):\n%s", diff)
	}
}
