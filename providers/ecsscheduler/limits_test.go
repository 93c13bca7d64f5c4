package ecsscheduler_test

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/google/go-cmp/cmp"

	"github.com/convox-go/convox/internal/awstest"
	"github.com/convox-go/convox/internal/ecstest"
	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/ecsscheduler"
)

// TestLimitsAreTheECSRange checks the bounds the scheduler reports: the
// ECS defaults (5,000 tasks per service), and a configured count never
// beyond what an int32 desired count holds.
func TestLimitsAreTheECSRange(t *testing.T) {
	tests := []struct {
		name string
		opts providers.Limits
		want int
	}{
		{"the default is the ECS tasks-per-service quota", providers.Limits{}, ecsscheduler.DefaultMaxCount},
		{"a configured count is kept", providers.Limits{MaxCount: 100}, 100},
		{"a count beyond int32 is capped at MaxInt32", providers.Limits{MaxCount: 1<<32 + 1}, math.MaxInt32},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := ecsscheduler.New(ecs.New(ecs.Options{}), &ecsscheduler.Options{Limits: tt.opts})
			if diff := cmp.Diff(tt.want, s.Limits().MaxCount); diff != "" {
				t.Errorf("Limits().MaxCount (-want +got):\n%s", diff)
			}
		})
	}
}

// TestOutOfRangeInputMakesNoECSCall checks that counts ECS cannot hold —
// 2^32+1 once became 1 through int32 truncation — and other hazards are
// refused with ErrInvalid before any ECS call, by Apply and Stage, and by
// RunTask for what a one-off task uses (it runs one instance; the count
// is not its input).
func TestOutOfRangeInputMakesNoECSCall(t *testing.T) {
	tests := []struct {
		name    string
		modify  func(d *providers.Desired)
		runTask bool // RunTask of the same process and env is refused too
	}{
		{"a count of 2^32+1", func(d *providers.Desired) { d.Processes[0].Count = 1<<32 + 1 }, false},
		{"a count of 1<<40", func(d *providers.Desired) { d.Processes[0].Count = 1 << 40 }, false},
		{"a count one over the ECS quota", func(d *providers.Desired) { d.Processes[0].Count = ecsscheduler.DefaultMaxCount + 1 }, false},
		{"an env value with NUL", func(d *providers.Desired) { d.Env = map[string]string{"A": "x\x00"} }, true},
		{"an environment over the task definition's share", func(d *providers.Desired) {
			d.Env = map[string]string{"A": strings.Repeat("x", 20<<10), "B": strings.Repeat("x", 20<<10)}
		}, true},
		{"a health path @127.0.0.1:1/x", func(d *providers.Desired) { d.Processes[0].Health.Path = "@127.0.0.1:1/x" }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRack(t, nil)
			d := desired("shop", "R1", "t1", nil, web, worker)
			tt.modify(&d)
			if _, err := r.sch.Apply(t.Context(), d); !errors.Is(err, providers.ErrInvalid) {
				t.Errorf("Apply = %v, want ErrInvalid", err)
			}
			if _, err := r.sch.Stage(t.Context(), d); !errors.Is(err, providers.ErrInvalid) {
				t.Errorf("Stage = %v, want ErrInvalid", err)
			}
			if tt.runTask {
				run := providers.RunSpec{App: "shop", Release: "R1", Token: "run-1", Image: image, Env: d.Env, Process: d.Processes[0], Command: []string{"true"}}
				if _, err := r.sch.RunTask(t.Context(), run); !errors.Is(err, providers.ErrInvalid) {
					t.Errorf("RunTask = %v, want ErrInvalid", err)
				}
			}
			if diff := cmp.Diff(map[string]int{}, r.calls.Counts()); diff != "" {
				t.Errorf("calls made before refusing (-want +got):\n%s", diff)
			}
		})
	}
}

// TestDesiredCountReachesECSExactly checks a count at the configured limit
// is applied as that desired count, and one more is refused.
func TestDesiredCountReachesECSExactly(t *testing.T) {
	srv := ecstest.New(t, nil)
	calls := awstest.NewCounter()
	cfg := awstest.ConfigFor(srv.URL)
	cfg.APIOptions = append(cfg.APIOptions, calls.AddTo)
	sch := ecsscheduler.New(ecs.NewFromConfig(cfg), &ecsscheduler.Options{
		Cluster: cluster, Subnets: []string{"subnet-1"}, SecurityGroups: []string{"sg-1"},
		ExecutionRoleARN: "arn:aws:iam::000000000000:role/exec", Limits: providers.Limits{MaxCount: 3},
	})
	p := worker
	p.Count = 3
	if _, err := sch.Apply(t.Context(), desired("shop", "R1", "t1", nil, p)); err != nil {
		t.Fatalf("Apply with count 3 on a limit of 3: %v", err)
	}
	st, err := sch.Status(t.Context(), "shop")
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Processes) != 1 || st.Processes[0].Desired != 3 {
		t.Errorf("processes = %+v, want worker with desired 3", st.Processes)
	}
	calls.Reset()
	p.Count = 4
	if _, err := sch.Apply(t.Context(), desired("shop", "R2", "t2", nil, p)); !errors.Is(err, providers.ErrInvalid) {
		t.Fatalf("Apply with count 4 on a limit of 3 = %v, want ErrInvalid", err)
	}
	if diff := cmp.Diff(map[string]int{}, calls.Counts()); diff != "" {
		t.Errorf("calls made before refusing (-want +got):\n%s", diff)
	}
}
