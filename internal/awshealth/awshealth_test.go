package awshealth_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/convox-go/convox/internal/awshealth"
	"github.com/convox-go/convox/providers"
)

func TestCheck(t *testing.T) {
	tests := []struct {
		name   string
		health providers.HealthCheck
		bounds awshealth.Bounds
		want   awshealth.Settings
		err    string // "" when valid
	}{
		{"zero fields take the defaults", providers.HealthCheck{}, awshealth.TargetGroup,
			awshealth.Settings{Path: "/", Interval: 10, Timeout: 5, Healthy: 2, Unhealthy: 3}, ""},
		{"durations round up to whole seconds", providers.HealthCheck{Path: "/healthz", Interval: 6500 * time.Millisecond, Timeout: 1001 * time.Millisecond, Healthy: 4, Unhealthy: 10}, awshealth.Classic,
			awshealth.Settings{Path: "/healthz", Interval: 7, Timeout: 2, Healthy: 4, Unhealthy: 10}, ""},
		{"a target group takes timeouts up to 120s", providers.HealthCheck{Interval: 300 * time.Second, Timeout: 120 * time.Second}, awshealth.TargetGroup,
			awshealth.Settings{Path: "/", Interval: 300, Timeout: 120, Healthy: 2, Unhealthy: 3}, ""},
		{"a classic load balancer takes timeouts up to 60s", providers.HealthCheck{Interval: 300 * time.Second, Timeout: 61 * time.Second}, awshealth.Classic,
			awshealth.Settings{}, "route web: health check timeout 61s is outside 2-60s"},
		{"a path starts with a slash", providers.HealthCheck{Path: "health"}, awshealth.TargetGroup,
			awshealth.Settings{}, `route web: health check path "health" must start with / and have at most 1024 characters`},
		{"a path longer than the kind's limit is refused", providers.HealthCheck{Path: "/" + strings.Repeat("a", 1000)}, awshealth.Classic,
			awshealth.Settings{}, "must start with / and have at most 1000 characters"},
		{"the interval is at least 5s", providers.HealthCheck{Interval: 4 * time.Second, Timeout: 2 * time.Second}, awshealth.TargetGroup,
			awshealth.Settings{}, "route web: health check interval 4s is outside 5-300s"},
		{"the timeout is shorter than the interval", providers.HealthCheck{Interval: 5 * time.Second, Timeout: 5 * time.Second}, awshealth.TargetGroup,
			awshealth.Settings{}, "route web: health check timeout 5s must be shorter than the interval 5s"},
		{"the healthy threshold is 2 to 10", providers.HealthCheck{Healthy: 11}, awshealth.TargetGroup,
			awshealth.Settings{}, "route web: healthy threshold 11 is outside 2-10"},
		{"the unhealthy threshold is 2 to 10", providers.HealthCheck{Unhealthy: 1}, awshealth.TargetGroup,
			awshealth.Settings{}, "route web: unhealthy threshold 1 is outside 2-10"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := awshealth.Check("web", tt.health, tt.bounds)
			if tt.err == "" {
				if err != nil {
					t.Fatalf("Check: %v", err)
				}
			} else {
				if !errors.Is(err, providers.ErrInvalid) {
					t.Fatalf("Check: %v, want an error matching ErrInvalid", err)
				}
				if !strings.Contains(err.Error(), tt.err) {
					t.Errorf("Check: %q, want it to contain %q", err, tt.err)
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Check (-want +got):\n%s", diff)
			}
		})
	}
}
