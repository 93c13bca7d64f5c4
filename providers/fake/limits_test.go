package fake_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/fake"
)

// TestSchedulerRefusesInputBeyondItsLimits checks the fake scheduler's
// entry checks, with the limits of fake.Options: each hazard is an
// ErrInvalid and the app is never recorded.
func TestSchedulerRefusesInputBeyondItsLimits(t *testing.T) {
	r := fake.New(&fake.Options{Limits: providers.Limits{MaxCount: 3}})
	if diff := cmp.Diff(3, r.Scheduler().Limits().MaxCount); diff != "" {
		t.Errorf("Limits().MaxCount from Options.Limits (-want +got):\n%s", diff)
	}
	img := r.Push("web", "v1", &fake.ImageConfig{Entrypoint: []string{"/server"}})
	base := func() providers.Desired {
		return providers.Desired{App: "web", Release: "R1", Token: "t1", Image: img,
			Processes: []providers.Process{{Name: "web", Count: 1}}}
	}
	tests := []struct {
		name   string
		modify func(d *providers.Desired)
	}{
		{"a count of a billion", func(d *providers.Desired) { d.Processes[0].Count = 1e9 }},
		{"a count one over the rack's limit", func(d *providers.Desired) { d.Processes[0].Count = 4 }},
		{"an env value with NUL", func(d *providers.Desired) { d.Env = map[string]string{"A": "x\x00y"} }},
		{"an env value of 128 KiB", func(d *providers.Desired) { d.Env = map[string]string{"A": strings.Repeat("x", 128<<10)} }},
		{"a health path @127.0.0.1:1/x", func(d *providers.Desired) { d.Processes[0].Health.Path = "@127.0.0.1:1/x" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := base()
			tt.modify(&d)
			if _, err := r.Scheduler().Apply(t.Context(), d); !errors.Is(err, providers.ErrInvalid) {
				t.Fatalf("Apply = %v, want ErrInvalid", err)
			}
			if _, err := r.Scheduler().Status(t.Context(), "web"); !errors.Is(err, providers.ErrNotFound) {
				t.Fatalf("Status after a refused Apply = %v, want ErrNotFound: nothing was recorded", err)
			}
		})
	}
	t.Run("RunTask with a NUL in the command", func(t *testing.T) {
		spec := providers.RunSpec{App: "web", Release: "R1", Token: "run", Image: img, Process: base().Processes[0], Command: []string{"env", "A\x00"}}
		if _, err := r.Scheduler().RunTask(t.Context(), spec); !errors.Is(err, providers.ErrInvalid) {
			t.Fatalf("RunTask = %v, want ErrInvalid", err)
		}
	})
}
