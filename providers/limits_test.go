package providers_test

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/convox-go/convox/providers"
)

// validDesired is a desired state every rule accepts; cases change one thing.
func validDesired() providers.Desired {
	return providers.Desired{
		App: "shop", Release: "R1", Token: "t1",
		Image:  providers.Image{Repository: "registry.test/shop", Digest: "sha256:" + strings.Repeat("a", 64)},
		Env:    map[string]string{"MODE": "production", "TOKEN": "hunter2"},
		Secret: []string{"TOKEN"},
		Processes: []providers.Process{
			{Name: "web", Count: 2, Port: 8080, Health: providers.HealthCheck{Path: "/health", Interval: 5 * time.Second}},
			{Name: "worker", Count: 1, Command: []string{"worker", "--queue", "default"}},
		},
		Bindings: map[string][]providers.Binding{"web": {{Balancer: "local", Kind: providers.BindingLocal, Target: "shop-web", Port: 8080}}},
	}
}

// manyVars returns n variables named V0..V(n-1) with value v.
func manyVars(n int, v string) map[string]string {
	env := make(map[string]string, n)
	for i := range n {
		env[fmt.Sprintf("V%d", i)] = v
	}
	return env
}

func TestDesiredValidate(t *testing.T) {
	lim := providers.DefaultLimits()
	tests := []struct {
		name   string
		modify func(d *providers.Desired)
		ok     bool
	}{
		{"a valid desired state is accepted", func(d *providers.Desired) {}, true},
		{"a count at the limit is accepted", func(d *providers.Desired) { d.Processes[0].Count = lim.MaxCount }, true},
		{"a count one over the limit is refused", func(d *providers.Desired) { d.Processes[0].Count = lim.MaxCount + 1 }, false},
		{"a count of a billion is refused", func(d *providers.Desired) { d.Processes[0].Count = 1e9 }, false},
		{"a count of 1<<40 is refused", func(d *providers.Desired) { d.Processes[0].Count = 1 << 40 }, false},
		{"a negative count is refused", func(d *providers.Desired) { d.Processes[0].Count = -1 }, false},
		{"instances over MaxTasks in all are refused", func(d *providers.Desired) {
			d.Processes = nil
			for i := range lim.MaxTasks/lim.MaxCount + 1 {
				d.Processes = append(d.Processes, providers.Process{Name: fmt.Sprintf("p%d", i), Count: lim.MaxCount})
			}
			d.Bindings = nil
		}, false},
		{"more process types than MaxProcesses are refused", func(d *providers.Desired) {
			d.Processes = nil
			for i := range lim.MaxProcesses + 1 {
				d.Processes = append(d.Processes, providers.Process{Name: fmt.Sprintf("p%d", i)})
			}
			d.Bindings = nil
		}, false},
		{"port 0 (no traffic) is accepted", func(d *providers.Desired) { d.Processes[1].Port = 0 }, true},
		{"port 65535 is accepted", func(d *providers.Desired) { d.Processes[1].Port = 65535 }, true},
		{"port 65536 is refused", func(d *providers.Desired) { d.Processes[1].Port = 65536 }, false},
		{"a negative port is refused", func(d *providers.Desired) { d.Processes[1].Port = -1 }, false},
		{"a binding port over 65535 is refused", func(d *providers.Desired) { d.Bindings["web"][0].Port = 1 << 20 }, false},
		{"cpu over MaxCPU is refused", func(d *providers.Desired) { d.Processes[0].CPU = providers.MaxCPU + 1 }, false},
		{"memory over MaxMemory is refused", func(d *providers.Desired) { d.Processes[0].Memory = providers.MaxMemory + 1 }, false},
		{"a command argument with NUL is refused", func(d *providers.Desired) { d.Processes[1].Command = []string{"a\x00b"} }, false},
		{"a command over MaxCommandBytes is refused", func(d *providers.Desired) {
			d.Processes[1].Command = []string{strings.Repeat("x", providers.MaxCommandBytes)}
		}, false},
		{"an env value with NUL is refused", func(d *providers.Desired) { d.Env["MODE"] = "a\x00b" }, false},
		{"a secret value with NUL is refused", func(d *providers.Desired) { d.Env["TOKEN"] = "a\x00b" }, false},
		{"an env value of 128 KiB is refused", func(d *providers.Desired) { d.Env["MODE"] = strings.Repeat("x", 128<<10) }, false},
		{"an env value at MaxEnvValue is accepted", func(d *providers.Desired) { d.Env["MODE"] = strings.Repeat("x", lim.MaxEnvValue) }, true},
		{"20,000 variables are refused", func(d *providers.Desired) { d.Env, d.Secret = manyVars(20000, "v"), nil }, false},
		{"an environment over MaxEnvBytes in all is refused", func(d *providers.Desired) {
			d.Env, d.Secret = manyVars(3, strings.Repeat("x", lim.MaxEnvBytes/3)), nil
		}, false},
		{"an env name with = is refused", func(d *providers.Desired) { d.Env["A=B"] = "v" }, false},
		{"an empty env name is refused", func(d *providers.Desired) { d.Env[""] = "v" }, false},
		{"an env name starting with a digit is refused", func(d *providers.Desired) { d.Env["1A"] = "v" }, false},
		{"an env name over MaxEnvName is refused", func(d *providers.Desired) { d.Env[strings.Repeat("A", providers.MaxEnvName+1)] = "v" }, false},
		{"a secret name that is not a variable is refused", func(d *providers.Desired) { d.Secret = append(d.Secret, "MISSING") }, false},
		{"a health path with @host:port is refused", func(d *providers.Desired) { d.Processes[0].Health.Path = "@127.0.0.1:1/x" }, false},
		{"a health path without a leading slash is refused", func(d *providers.Desired) { d.Processes[0].Health.Path = "health" }, false},
		{"an empty release is refused", func(d *providers.Desired) { d.Release = "" }, false},
		{"a release over MaxIDLen is refused", func(d *providers.Desired) { d.Release = strings.Repeat("R", providers.MaxIDLen+1) }, false},
		{"a token with a newline is refused", func(d *providers.Desired) { d.Token = "t\n1" }, false},
		{"an invalid app name is refused", func(d *providers.Desired) { d.App = "Shop" }, false},
		{"a process listed twice is refused", func(d *providers.Desired) { d.Processes[1].Name = "web" }, false},
		{"bindings of a process not in the formation are refused", func(d *providers.Desired) {
			d.Bindings["api"] = d.Bindings["web"]
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := validDesired()
			tt.modify(&d)
			err := d.Validate(lim)
			if tt.ok {
				if err != nil {
					t.Fatalf("Validate = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, providers.ErrInvalid) {
				t.Fatalf("Validate = %v, want ErrInvalid", err)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("the error %q holds a secret value", err)
			}
		})
	}
}

func TestHealthCheckValidate(t *testing.T) {
	tests := []struct {
		name string
		h    providers.HealthCheck
		ok   bool
	}{
		{"the zero health check takes defaults", providers.HealthCheck{}, true},
		{"an absolute path is accepted", providers.HealthCheck{Path: "/health"}, true},
		{"the root path is accepted", providers.HealthCheck{Path: "/"}, true},
		{"sub-delims and colons are accepted", providers.HealthCheck{Path: "/v1/status;full=true:x,y~z"}, true},
		{"a path of MaxHealthPath bytes is accepted", providers.HealthCheck{Path: "/" + strings.Repeat("a", providers.MaxHealthPath-1)}, true},
		{"@host:port is refused", providers.HealthCheck{Path: "@127.0.0.1:1/x"}, false},
		{"/@host:port is refused", providers.HealthCheck{Path: "/@127.0.0.1:1/x"}, false},
		{"a path without a leading slash is refused", providers.HealthCheck{Path: "health"}, false},
		{"a network-path reference // is refused", providers.HealthCheck{Path: "//127.0.0.1:1/x"}, false},
		{"a scheme and host are refused", providers.HealthCheck{Path: "http://127.0.0.1:1/x"}, false},
		{"a query is refused", providers.HealthCheck{Path: "/health?full=1"}, false},
		{"a fragment is refused", providers.HealthCheck{Path: "/health#x"}, false},
		{"a percent escape is refused", providers.HealthCheck{Path: "/%2e%2e/x"}, false},
		{"a space is refused", providers.HealthCheck{Path: "/a b"}, false},
		{"a newline is refused", providers.HealthCheck{Path: "/a\r\nHost: evil"}, false},
		{"a NUL byte is refused", providers.HealthCheck{Path: "/a\x00"}, false},
		{"non-ASCII is refused", providers.HealthCheck{Path: "/ü"}, false},
		{"a path over MaxHealthPath is refused", providers.HealthCheck{Path: "/" + strings.Repeat("a", providers.MaxHealthPath)}, false},
		{"timing at the maximums is accepted", providers.HealthCheck{Grace: providers.MaxHealthGrace, Interval: providers.MaxHealthInterval, Timeout: providers.MaxHealthTimeout, Healthy: 10, Unhealthy: 10}, true},
		{"a negative grace is refused", providers.HealthCheck{Grace: -time.Second}, false},
		{"a grace over MaxHealthGrace is refused", providers.HealthCheck{Grace: providers.MaxHealthGrace + 1}, false},
		{"a negative interval is refused", providers.HealthCheck{Interval: -1}, false},
		{"an interval over MaxHealthInterval is refused", providers.HealthCheck{Interval: providers.MaxHealthInterval + 1}, false},
		{"a timeout over MaxHealthTimeout is refused", providers.HealthCheck{Timeout: providers.MaxHealthTimeout + 1}, false},
		{"a healthy threshold over 10 is refused", providers.HealthCheck{Healthy: 11}, false},
		{"a negative unhealthy threshold is refused", providers.HealthCheck{Unhealthy: -1}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.h.Validate()
			if tt.ok != (err == nil) {
				t.Fatalf("Validate(%+v) = %v, want ok=%v", tt.h, err, tt.ok)
			}
			if err != nil && !errors.Is(err, providers.ErrInvalid) {
				t.Fatalf("Validate = %v, want ErrInvalid", err)
			}
		})
	}
}

func TestRunSpecValidate(t *testing.T) {
	valid := func() providers.RunSpec {
		return providers.RunSpec{
			App: "shop", Release: "R1", Token: "run-1",
			Image:   providers.Image{Repository: "registry.test/shop", Digest: "sha256:" + strings.Repeat("a", 64)},
			Env:     map[string]string{"TOKEN": "hunter2"},
			Secret:  []string{"TOKEN"},
			Process: providers.Process{Name: "web", Count: 2, Port: 8080},
			Command: []string{"migrate", "--up"},
		}
	}
	tests := []struct {
		name   string
		modify func(r *providers.RunSpec)
		ok     bool
	}{
		{"a valid spec is accepted", func(r *providers.RunSpec) {}, true},
		{"the process count is not used and not checked", func(r *providers.RunSpec) { r.Process.Count = 1 << 40 }, true},
		{"a command argument with NUL is refused", func(r *providers.RunSpec) { r.Command = []string{"env", "A\x00"} }, false},
		{"a command of more than MaxCommandArgs arguments is refused", func(r *providers.RunSpec) {
			r.Command = make([]string, providers.MaxCommandArgs+1)
		}, false},
		{"an env value with NUL is refused", func(r *providers.RunSpec) { r.Env["TOKEN"] = "a\x00" }, false},
		{"20,000 variables are refused", func(r *providers.RunSpec) { r.Env, r.Secret = manyVars(20000, "v"), nil }, false},
		{"a bad process port is refused", func(r *providers.RunSpec) { r.Process.Port = 70000 }, false},
		{"a bad health path is refused", func(r *providers.RunSpec) { r.Process.Health.Path = "@evil/x" }, false},
		{"an invalid process name is refused", func(r *providers.RunSpec) { r.Process.Name = "Web" }, false},
		{"a token over MaxIDLen is refused", func(r *providers.RunSpec) { r.Token = strings.Repeat("t", providers.MaxIDLen+1) }, false},
		{"a secret name that is not a variable is refused", func(r *providers.RunSpec) { r.Secret = []string{"NOPE"} }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := valid()
			tt.modify(&r)
			err := r.Validate(providers.DefaultLimits())
			if tt.ok != (err == nil) {
				t.Fatalf("Validate = %v, want ok=%v", err, tt.ok)
			}
			if err != nil && !errors.Is(err, providers.ErrInvalid) {
				t.Fatalf("Validate = %v, want ErrInvalid", err)
			}
		})
	}
}

func TestLogQueryValidate(t *testing.T) {
	tests := []struct {
		name string
		q    providers.LogQuery
		ok   bool
	}{
		{"the zero query is accepted", providers.LogQuery{App: "shop"}, true},
		{"a filter of MaxLogFilter bytes is accepted", providers.LogQuery{Filter: strings.Repeat("x", providers.MaxLogFilter)}, true},
		{"a filter over MaxLogFilter is refused", providers.LogQuery{Filter: strings.Repeat("x", providers.MaxLogFilter+1)}, false},
		{"a process over MaxLogField is refused", providers.LogQuery{Process: strings.Repeat("p", providers.MaxLogField+1)}, false},
		{"a release over MaxLogField is refused", providers.LogQuery{Release: strings.Repeat("R", providers.MaxLogField+1)}, false},
		{"a stream over MaxLogField is refused", providers.LogQuery{Stream: strings.Repeat("s", providers.MaxLogField+1)}, false},
		{"a limit of MaxLogLimit is accepted", providers.LogQuery{Limit: providers.MaxLogLimit}, true},
		{"a limit over MaxLogLimit is refused", providers.LogQuery{Limit: providers.MaxLogLimit + 1}, false},
		{"a negative limit is refused", providers.LogQuery{Limit: -1}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.q.Validate()
			if tt.ok != (err == nil) {
				t.Fatalf("Validate = %v, want ok=%v", err, tt.ok)
			}
			if err != nil && !errors.Is(err, providers.ErrInvalid) {
				t.Fatalf("Validate = %v, want ErrInvalid", err)
			}
		})
	}
}

func TestValidateDescription(t *testing.T) {
	tests := []struct {
		name string
		s    string
		ok   bool
	}{
		{"empty is accepted", "", true},
		{"MaxDescription bytes are accepted", strings.Repeat("d", providers.MaxDescription), true},
		{"over MaxDescription is refused", strings.Repeat("d", providers.MaxDescription+1), false},
		{"invalid UTF-8 is refused", "\xff", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := providers.ValidateDescription(tt.s)
			if tt.ok != (err == nil) || err != nil && !errors.Is(err, providers.ErrInvalid) {
				t.Fatalf("ValidateDescription = %v, want ok=%v (ErrInvalid otherwise)", err, tt.ok)
			}
		})
	}
}

func TestLimitsWithDefaults(t *testing.T) {
	tests := []struct {
		name string
		in   providers.Limits
		want providers.Limits
	}{
		{"the zero limits are the defaults", providers.Limits{}, providers.Limits{
			MaxCount: providers.DefaultMaxCount, MaxTasks: providers.DefaultMaxTasks, MaxProcesses: providers.DefaultMaxProcesses,
			MaxEnvVars: providers.DefaultMaxEnvVars, MaxEnvValue: providers.DefaultMaxEnvValue, MaxEnvBytes: providers.DefaultMaxEnvBytes,
		}},
		{"MaxCount is capped at MaxInt32, which every backend stores", providers.Limits{MaxCount: 1 << 40, MaxTasks: 1 << 40}, providers.Limits{
			MaxCount: math.MaxInt32, MaxTasks: 1 << 40, MaxProcesses: providers.DefaultMaxProcesses,
			MaxEnvVars: providers.DefaultMaxEnvVars, MaxEnvValue: providers.DefaultMaxEnvValue, MaxEnvBytes: providers.DefaultMaxEnvBytes,
		}},
		{"a default MaxTasks is at least MaxCount", providers.Limits{MaxCount: 1000}, providers.Limits{
			MaxCount: 1000, MaxTasks: 1000, MaxProcesses: providers.DefaultMaxProcesses,
			MaxEnvVars: providers.DefaultMaxEnvVars, MaxEnvValue: providers.DefaultMaxEnvValue, MaxEnvBytes: providers.DefaultMaxEnvBytes,
		}},
		{"negative fields take defaults", providers.Limits{MaxCount: -1, MaxEnvVars: -5}, providers.DefaultLimits()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, tt.in.WithDefaults()); diff != "" {
				t.Errorf("WithDefaults (-want +got):\n%s", diff)
			}
		})
	}
}
