package ecsscheduler_test

import (
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/google/go-cmp/cmp"

	"github.com/convox-go/convox/providers"
)

var clbLive = providers.Binding{Kind: providers.BindingClassicELB, Target: "shop-web", Port: 8080}

// attachment is what one ECS service of the app runs and is attached to.
type attachment struct {
	Role     string
	Launch   types.LaunchType
	Balancer []string
	Release  string
}

// attachments returns the app's ACTIVE services, keyed "serving" or
// "paired" by their role.
func (r *rack) attachments(t *testing.T) map[string]attachment {
	t.Helper()
	out := map[string]attachment{}
	for _, name := range r.services(t) {
		svc := r.describe(t, name)
		a := attachment{Role: cmpOr(tagValue(svc, "convox:role"), "serving"), Launch: svc.LaunchType, Release: tagValue(svc, "convox:release")}
		for _, lb := range svc.LoadBalancers {
			switch {
			case lb.LoadBalancerName != nil:
				a.Balancer = append(a.Balancer, "classic:"+aws.ToString(lb.LoadBalancerName))
			default:
				a.Balancer = append(a.Balancer, "target-group:"+aws.ToString(lb.TargetGroupArn)[strings.LastIndex(aws.ToString(lb.TargetGroupArn), "targetgroup/")+len("targetgroup/"):])
			}
		}
		if _, dup := out[a.Role]; dup {
			t.Fatalf("two %s services: %v", a.Role, r.services(t))
		}
		out[a.Role] = a
	}
	return out
}

func cmpOr(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// TestMixedBindingsRunAPairedService checks how a process moves between a
// classic load balancer and target groups, which one ECS service cannot
// attach together: while its bindings mix the kinds, a paired service
// runs the release on the other kind beside the serving one; bindings of
// one kind again retire the service of the other kind.
func TestMixedBindingsRunAPairedService(t *testing.T) {
	onClassic := attachment{Role: "serving", Launch: types.LaunchTypeEc2, Balancer: []string{"classic:shop-web"}}
	onGroup := attachment{Role: "serving", Launch: types.LaunchTypeFargate, Balancer: []string{"target-group:shop-web/1"}}
	paired := attachment{Role: "paired", Launch: types.LaunchTypeFargate, Balancer: []string{"target-group:shop-web/1"}}
	with := func(a attachment, release string) attachment { a.Release = release; return a }
	tests := []struct {
		name string
		// from is what serves before; then mixed bindings are applied (R2),
		// then last.
		from, last providers.Binding
		wantMixed  map[string]attachment
		wantLast   map[string]attachment
	}{
		{
			name: "finishing a move from a classic load balancer promotes the paired service",
			from: clbLive, last: tgLive,
			wantMixed: map[string]attachment{"serving": with(onClassic, "R2"), "paired": with(paired, "R2")},
			wantLast:  map[string]attachment{"serving": with(onGroup, "R3")},
		},
		{
			name: "aborting a move from a classic load balancer retires the paired service",
			from: clbLive, last: clbLive,
			wantMixed: map[string]attachment{"serving": with(onClassic, "R2"), "paired": with(paired, "R2")},
			wantLast:  map[string]attachment{"serving": with(onClassic, "R3")},
		},
		{
			name: "a move from target groups pairs a service on the classic load balancer",
			from: tgLive, last: clbLive,
			wantMixed: map[string]attachment{"serving": with(onGroup, "R2"), "paired": with(attachment{Role: "paired", Launch: types.LaunchTypeEc2, Balancer: []string{"classic:shop-web"}}, "R2")},
			wantLast:  map[string]attachment{"serving": with(onClassic, "R3")},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRack(t, nil)
			r.apply(t, bound("R1", "t1", tt.from, web))
			r.srv.Settle()

			mixed := bound("R2", "t2", tt.from, web)
			other := tgLive
			if tt.from == tgLive {
				other = clbLive
			}
			mixed.Bindings["web"] = []providers.Binding{tt.from, other}
			r.apply(t, mixed)
			r.srv.Settle()
			if diff := cmp.Diff(tt.wantMixed, r.attachments(t)); diff != "" {
				t.Errorf("services with mixed bindings (-want +got):\n%s", diff)
			}
			st := r.status(t, "shop")
			if diff := cmp.Diff(summary{Release: "R2", State: providers.RolloutCompleted, Processes: []providers.ProcessStatus{{Name: "web", Release: "R2", Desired: 2, Running: 2}}}, summarize(st)); diff != "" {
				t.Errorf("status with mixed bindings (-want +got):\n%s", diff)
			}
			if n := len(runningIDs(st, "R2")); n != 4 {
				t.Errorf("%d running tasks of R2 with mixed bindings, want 4 (2 per service)", n)
			}
			r.calls.Reset()
			if again := r.apply(t, mixed); again.State != providers.RolloutCompleted {
				t.Errorf("Apply of the same token = %+v, want the completed rollout", again)
			}
			if n := r.calls.Count("CreateService") + r.calls.Count("UpdateService"); n != 0 {
				t.Errorf("Apply of the same token changed services %d times (calls: %v)", n, r.calls)
			}

			r.apply(t, bound("R3", "t3", tt.last, web))
			r.srv.Settle()
			if diff := cmp.Diff(tt.wantLast, r.attachments(t)); diff != "" {
				t.Errorf("services after bindings of one kind again (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(summary{Release: "R3", State: providers.RolloutCompleted, Processes: []providers.ProcessStatus{{Name: "web", Release: "R3", Desired: 2, Running: 2}}}, summarize(r.status(t, "shop"))); diff != "" {
				t.Errorf("status after bindings of one kind again (-want +got):\n%s", diff)
			}
		})
	}
}
