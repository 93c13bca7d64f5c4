package providertest

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/convox-go/convox/providers"
)

// PlanHarness holds what CheckPlanChanges needs of a ChangePlanner.
type PlanHarness struct {
	// Planner is the scheduler under test.
	Planner interface {
		providers.Scheduler
		providers.ChangePlanner
	}
	// Desired is what to plan; its app may or may not exist.
	Desired providers.Desired
	// Leftovers lists the platform's intermediate objects of the app that
	// a plan must not leave behind (CloudFormation change sets); nil when
	// the platform makes none.
	Leftovers func(ctx context.Context, app string) ([]string, error)
}

// CheckPlanChanges checks the providers.ChangePlanner contract for one
// Desired: PlanChanges returns changes ordered by resource, each with a
// known action and a replacement only on a modify; it changes nothing
// (the scheduler's Status of the app is the same before and after, and a
// missing app stays missing); and it leaves no intermediate object behind.
func CheckPlanChanges(t *testing.T, h PlanHarness) {
	t.Helper()
	ctx := t.Context()
	app := h.Desired.App
	before, beforeErr := h.Planner.Status(ctx, app)
	changes, err := h.Planner.PlanChanges(ctx, h.Desired)
	if err != nil {
		t.Fatalf("PlanChanges(%s %s): %v", app, h.Desired.Release, err)
	}
	t.Run("PlanChanges/changes are ordered by resource", func(t *testing.T) {
		if !slices.IsSortedFunc(changes, func(a, b providers.ResourceChange) int { return strings.Compare(a.Resource, b.Resource) }) {
			t.Errorf("changes %+v are not ordered by resource", changes)
		}
	})
	t.Run("PlanChanges/each change has a known action and a replacement only on modify", func(t *testing.T) {
		for _, c := range changes {
			switch c.Action {
			case providers.ChangeAdd, providers.ChangeRemove:
				if c.Replacement != providers.ReplacementNone {
					t.Errorf("%s %s has replacement %q", c.Action, c.Resource, c.Replacement)
				}
			case providers.ChangeModify:
			default:
				t.Errorf("change of %s has unknown action %q", c.Resource, c.Action)
			}
			if c.Resource == "" || c.Type == "" {
				t.Errorf("change %+v names no resource or type", c)
			}
		}
	})
	t.Run("PlanChanges/changes nothing", func(t *testing.T) {
		after, afterErr := h.Planner.Status(ctx, app)
		if errors.Is(beforeErr, providers.ErrNotFound) {
			if !errors.Is(afterErr, providers.ErrNotFound) {
				t.Errorf("Status of a missing app after PlanChanges = %+v, %v; want ErrNotFound", after, afterErr)
			}
			return
		}
		if beforeErr != nil || afterErr != nil {
			t.Fatalf("Status before and after PlanChanges: %v, %v", beforeErr, afterErr)
		}
		if diff := cmp.Diff(before, after); diff != "" {
			t.Errorf("Status after PlanChanges (-before +after):\n%s", diff)
		}
	})
	t.Run("PlanChanges/leaves nothing behind", func(t *testing.T) {
		if h.Leftovers == nil {
			t.Skip("the platform makes no intermediate objects")
		}
		left, err := h.Leftovers(ctx, app)
		if err != nil {
			t.Fatal(err)
		}
		if len(left) != 0 {
			t.Errorf("after PlanChanges: %v, want nothing", left)
		}
	})
}
