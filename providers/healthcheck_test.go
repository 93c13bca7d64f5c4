package providers_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/convox-go/convox/providers"
)

func TestDefaultHealthCheck(t *testing.T) {
	want := providers.HealthCheck{Path: "/", Interval: 10 * time.Second, Timeout: 5 * time.Second, Healthy: 2, Unhealthy: 3}
	if diff := cmp.Diff(want, providers.DefaultHealthCheck()); diff != "" {
		t.Errorf("DefaultHealthCheck() (-want +got):\n%s", diff)
	}
	if err := providers.DefaultHealthCheck().Validate(); err != nil {
		t.Errorf("DefaultHealthCheck().Validate() = %v, want nil", err)
	}
}

func TestHealthCheckWithDefaults(t *testing.T) {
	def := providers.HealthCheck{Path: "/health", Grace: time.Minute, Interval: 7 * time.Second, Timeout: 3 * time.Second, Healthy: 4, Unhealthy: 5}
	tests := []struct {
		name   string
		h, def providers.HealthCheck
		want   providers.HealthCheck
	}{
		{"every zero field takes the default", providers.HealthCheck{}, def, def},
		{"the zero check takes DefaultHealthCheck", providers.HealthCheck{}, providers.DefaultHealthCheck(), providers.DefaultHealthCheck()},
		{"set fields are kept",
			providers.HealthCheck{Path: "/up", Grace: time.Second, Interval: time.Second, Timeout: time.Millisecond, Healthy: 1, Unhealthy: 9}, def,
			providers.HealthCheck{Path: "/up", Grace: time.Second, Interval: time.Second, Timeout: time.Millisecond, Healthy: 1, Unhealthy: 9}},
		{"only the path is set", providers.HealthCheck{Path: "/up"}, def,
			providers.HealthCheck{Path: "/up", Grace: time.Minute, Interval: 7 * time.Second, Timeout: 3 * time.Second, Healthy: 4, Unhealthy: 5}},
		{"only the interval is set", providers.HealthCheck{Interval: time.Second}, def,
			providers.HealthCheck{Path: "/health", Grace: time.Minute, Interval: time.Second, Timeout: 3 * time.Second, Healthy: 4, Unhealthy: 5}},
		{"only the thresholds are set", providers.HealthCheck{Healthy: 1, Unhealthy: 1}, def,
			providers.HealthCheck{Path: "/health", Grace: time.Minute, Interval: 7 * time.Second, Timeout: 3 * time.Second, Healthy: 1, Unhealthy: 1}},
		{"negative fields are kept for the backend to refuse",
			providers.HealthCheck{Interval: -time.Second, Timeout: -time.Second, Healthy: -1, Unhealthy: -1}, def,
			providers.HealthCheck{Path: "/health", Grace: time.Minute, Interval: -time.Second, Timeout: -time.Second, Healthy: -1, Unhealthy: -1}},
		{"a zero default leaves the field zero", providers.HealthCheck{}, providers.HealthCheck{Path: "/"}, providers.HealthCheck{Path: "/"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, tt.h.WithDefaults(tt.def)); diff != "" {
				t.Errorf("WithDefaults (-want +got):\n%s", diff)
			}
		})
	}
}
