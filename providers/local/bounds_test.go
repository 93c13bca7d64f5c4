package local

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/convox-go/convox/providers"
)

// TestSchedulerRefusesUnboundedInputBeforeAnyChange checks the scheduler's
// own entry checks: each hazard is an ErrInvalid and the app is never
// recorded (Status still reports it missing).
func TestSchedulerRefusesUnboundedInputBeforeAnyChange(t *testing.T) {
	opts := testOptions()
	opts.Limits = providers.Limits{MaxCount: 3}
	r, err := Open(t.TempDir(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	img := providers.Image{Repository: r.Registry().Host() + "/web", Digest: "sha256:" + strings.Repeat("a", 64), Entrypoint: []string{"/server"}}
	base := func() providers.Desired {
		return providers.Desired{App: "web", Release: "R1", Token: "t1", Image: img,
			Processes: []providers.Process{{Name: "web", Count: 1, Port: 8080, Health: providers.HealthCheck{Path: "/health"}}}}
	}
	if diff := cmp.Diff(3, r.Scheduler().Limits().MaxCount); diff != "" {
		t.Errorf("Limits().MaxCount from Options.Limits (-want +got):\n%s", diff)
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
		{"a health path without a slash", func(d *providers.Desired) { d.Processes[0].Health.Path = "health" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := base()
			tt.modify(&d)
			if _, err := r.Scheduler().Apply(t.Context(), d); !errors.Is(err, providers.ErrInvalid) {
				t.Fatalf("Apply = %v, want ErrInvalid", err)
			}
			if _, err := r.Scheduler().Stage(t.Context(), d); !errors.Is(err, providers.ErrInvalid) {
				t.Fatalf("Stage = %v, want ErrInvalid", err)
			}
			if _, err := r.Scheduler().Status(t.Context(), "web"); !errors.Is(err, providers.ErrNotFound) {
				t.Fatalf("Status after refusals = %v, want ErrNotFound: nothing was recorded", err)
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

// TestHealthProbeCannotBeRedirected checks that the probe's URL is built
// from its parts: whatever the path holds, the request goes to the
// target's address with that path, never to a host named in it.
func TestHealthProbeCannotBeRedirected(t *testing.T) {
	var mu sync.Mutex
	var targetPaths []string
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		mu.Lock()
		targetPaths = append(targetPaths, req.URL.EscapedPath())
		mu.Unlock()
		if req.URL.Path == "/health" {
			w.WriteHeader(http.StatusOK)
			return
		}
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer target.Close()
	var otherHits int
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		mu.Lock()
		otherHits++
		mu.Unlock()
		w.WriteHeader(http.StatusOK)
	}))
	defer other.Close()
	otherAddr := strings.TrimPrefix(other.URL, "http://")
	targetAddr := strings.TrimPrefix(target.URL, "http://")

	b := newBalancer(BalancerName, filepath.Join(t.TempDir(), "routes.json"), nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	tests := []struct {
		name        string
		path        string
		wantHealthy bool
		wantPath    string
	}{
		{"the health path reaches the target", "/health", true, "/health"},
		{"@host:port stays a path on the target", "@" + otherAddr + "/x", false, "/@" + otherAddr + "/x"},
		{"//host:port stays a path on the target", "//" + otherAddr + "/x", false, "//" + otherAddr + "/x"},
		{"a query character is escaped, not a query", "/health?x=1", false, "/health%3Fx=1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mu.Lock()
			targetPaths, otherHits = nil, 0
			mu.Unlock()
			healthy, reason := b.check(targetAddr, providers.HealthCheck{Path: tt.path, Timeout: 30 * time.Second})
			if healthy != tt.wantHealthy {
				t.Errorf("healthy = %v (%s), want %v", healthy, reason, tt.wantHealthy)
			}
			mu.Lock()
			defer mu.Unlock()
			if diff := cmp.Diff([]string{tt.wantPath}, targetPaths); diff != "" {
				t.Errorf("paths the target saw (-want +got):\n%s", diff)
			}
			if otherHits != 0 {
				t.Errorf("the other server answered %d probes, want 0", otherHits)
			}
		})
	}
}

// TestAppStateKeepsSecretValues checks that the scheduler's state file
// keeps the real secret values (a reopened rack restarts processes with
// them), although providers.Desired redacts them in JSON.
func TestAppStateKeepsSecretValues(t *testing.T) {
	d := providers.Desired{App: "web", Release: "R1", Token: "t", Env: map[string]string{"TOKEN": "hunter2", "MODE": "x"}, Secret: []string{"TOKEN"},
		Processes: []providers.Process{{Name: "web", Count: 1}}}
	b, err := json.Marshal(appState{App: "web", Release: "R1", Active: (*storedDesired)(&d)})
	if err != nil {
		t.Fatal(err)
	}
	var st appState
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(&d, (*providers.Desired)(st.Active)); diff != "" {
		t.Errorf("desired state after a save and a load (-want +got):\n%s", diff)
	}
	if plain, _ := json.Marshal(d); strings.Contains(string(plain), "hunter2") {
		t.Errorf("providers.Desired's own JSON holds the secret: %s", plain)
	}
}
