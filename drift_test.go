package convox_test

import (
	"errors"
	"testing"
	"testing/synctest"

	"github.com/google/go-cmp/cmp"

	"github.com/convox-go/convox"
	"github.com/convox-go/convox/providers"
)

func TestDrift(t *testing.T) {
	drifts := []providers.ResourceDrift{
		{Resource: "ServiceOfweb", Type: "AWS::ECS::Service", Status: "MODIFIED", Properties: []string{"/DesiredCount NOT_EQUAL"}},
	}
	for _, tc := range []struct {
		name      string
		detects   bool // the scheduler detects drift
		drifts    []providers.ResourceDrift
		driftErr  error
		want      []providers.ResourceDrift
		wantErr   error
		wantCalls int
	}{
		{name: "the scheduler's drifted resources are returned", detects: true, drifts: drifts, want: drifts, wantCalls: 1},
		{name: "no drift is an empty result", detects: true, wantCalls: 1},
		{name: "a failed detection fails Drift", detects: true, driftErr: providers.ErrUnavailable, wantErr: providers.ErrUnavailable, wantCalls: 1},
		{name: "a scheduler without drift detection refuses before any call", wantErr: providers.ErrUnimplemented},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx := t.Context()
				s := &stackScheduler{drifts: tc.drifts, driftErr: tc.driftErr}
				var w *world
				if tc.detects {
					w = newStackWorld(t, s)
				} else {
					w = newWorld(t, nil)
				}
				w.deployV1(ctx)
				got, err := w.c.App("web").Drift(ctx)
				if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
					t.Fatalf("Drift = %v, %v; want error %v", got, err, tc.wantErr)
				}
				if diff := cmp.Diff(tc.want, got); diff != "" {
					t.Errorf("drift (-want +got):\n%s", diff)
				}
				if s.driftCalls != tc.wantCalls {
					t.Errorf("DetectDrift called %d times, want %d", s.driftCalls, tc.wantCalls)
				}
				if err := w.c.App("web").Check(ctx, convox.CapDriftDetector); (err == nil) != tc.detects {
					t.Errorf("Check(CapDriftDetector) = %v with a scheduler that detects drift: %v", err, tc.detects)
				}
			})
		})
	}
}

func TestRackCheckKnowsTheStackCapabilities(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, nil)
		for _, c := range []convox.Capability{convox.CapChangePlanner, convox.CapDriftDetector, convox.CapEventReporter} {
			if err := w.rack.ConvoxRack().Check(c); !errors.Is(err, providers.ErrUnimplemented) {
				t.Errorf("Rack.Check(%s) on the fake = %v, want ErrUnimplemented", c, err)
			}
		}
		s := &stackScheduler{}
		sw := newStackWorld(t, s)
		sw.deployV1(t.Context())
		if err := sw.c.App("web").Check(t.Context(), convox.CapChangePlanner, convox.CapDriftDetector, convox.CapEventReporter); err != nil {
			t.Errorf("Check of the stack capabilities on a scheduler with them = %v, want nil", err)
		}
	})
}
