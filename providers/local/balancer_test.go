package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/convox-go/convox/providers"
)

func newTestBalancer(t *testing.T, ports map[string]int) *Balancer {
	t.Helper()
	b := newBalancer(BalancerName, filepath.Join(t.TempDir(), "routes.json"), ports, slog.New(slog.NewTextHandler(io.Discard, nil)))
	t.Cleanup(b.close)
	return b
}

// backend is a test target answering GET / with its name; its health path
// answers 500 while sick is set.
type backend struct {
	name string
	srv  *httptest.Server
	sick atomic.Bool
	hits atomic.Int64
}

func newBackend(t *testing.T, name string, handler http.HandlerFunc) *backend {
	t.Helper()
	b := &backend{name: name}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			if b.sick.Load() {
				w.WriteHeader(http.StatusInternalServerError)
			}
			return
		}
		b.hits.Add(1)
		if handler != nil {
			handler(w, r)
			return
		}
		fmt.Fprint(w, name)
	}))
	t.Cleanup(b.srv.Close)
	return b
}

func (b *backend) addr() string { return strings.TrimPrefix(b.srv.URL, "http://") }

var quickHealth = providers.HealthCheck{Path: "/health", Interval: 20 * time.Millisecond, Timeout: time.Second, Healthy: 1, Unhealthy: 1}

func TestBalancerSplitsTrafficByWeight(t *testing.T) {
	b := newTestBalancer(t, nil)
	ctx := t.Context()
	route, err := b.EnsureRoute(ctx, providers.RouteSpec{App: "web", Process: "web", Port: 8080, Health: quickHealth})
	if err != nil {
		t.Fatal(err)
	}
	canary, err := b.EnsureTargetSet(ctx, route.ID, "c")
	if err != nil {
		t.Fatal(err)
	}
	stable, fresh := newBackend(t, "stable", nil), newBackend(t, "canary", nil)
	b.register([]string{route.Binding.Target}, stable.addr(), true)
	b.register([]string{canary.Target}, fresh.addr(), true)
	tests := []struct {
		name    string
		weights map[string]int
		want    map[string]int
	}{
		{"a new set gets no traffic until weighted", nil, map[string]int{"stable": 100}},
		{"10 percent to the canary", map[string]int{"": 90, "c": 10}, map[string]int{"stable": 90, "canary": 10}},
		{"everything to the canary", map[string]int{"c": 100}, map[string]int{"canary": 100}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.weights != nil {
				if err := b.SetWeights(ctx, route.ID, tt.weights); err != nil {
					t.Fatal(err)
				}
			}
			got := map[string]int{}
			for range 100 {
				got[get(route.Endpoint)]++
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("responses of 100 requests (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("a weighted set cannot be deleted", func(t *testing.T) {
		if err := b.DeleteTargetSet(ctx, route.ID, "c"); !errors.Is(err, providers.ErrConflict) {
			t.Errorf("DeleteTargetSet error = %v, want ErrConflict", err)
		}
	})
	t.Run("weights must sum to 100", func(t *testing.T) {
		if err := b.SetWeights(ctx, route.ID, map[string]int{"": 50}); !errors.Is(err, providers.ErrInvalid) {
			t.Errorf("SetWeights error = %v, want ErrInvalid", err)
		}
	})
}

// waitTargetState polls Health until addr has the state.
func waitTargetState(t *testing.T, b *Balancer, routeID, addr string, want providers.TargetState) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	for {
		hs, err := b.Health(ctx, routeID)
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range hs {
			if h.Target == addr && h.State == want {
				return
			}
		}
		if !sleepCtx(ctx, 10*time.Millisecond) {
			t.Fatalf("target %s never became %s; health %+v", addr, want, hs)
		}
	}
}

func TestBalancerHealthChecksTakeTargetsOutOfRotation(t *testing.T) {
	b := newTestBalancer(t, nil)
	ctx := t.Context()
	route, err := b.EnsureRoute(ctx, providers.RouteSpec{App: "web", Process: "web", Port: 8080, Health: quickHealth})
	if err != nil {
		t.Fatal(err)
	}
	good, bad := newBackend(t, "good", nil), newBackend(t, "bad", nil)
	bad.sick.Store(true)
	b.register([]string{route.Binding.Target}, good.addr(), false)
	b.register([]string{route.Binding.Target}, bad.addr(), false)
	waitTargetState(t, b, route.ID, good.addr(), providers.TargetHealthy)
	waitTargetState(t, b, route.ID, bad.addr(), providers.TargetUnhealthy)
	got := map[string]int{}
	for range 20 {
		got[get(route.Endpoint)]++
	}
	if diff := cmp.Diff(map[string]int{"good": 20}, got); diff != "" {
		t.Errorf("responses with one unhealthy target (-want +got):\n%s", diff)
	}
	bad.sick.Store(false)
	waitTargetState(t, b, route.ID, bad.addr(), providers.TargetHealthy)
	got = map[string]int{}
	for range 20 {
		got[get(route.Endpoint)]++
	}
	if diff := cmp.Diff(map[string]int{"good": 10, "bad": 10}, got); diff != "" {
		t.Errorf("responses once both are healthy (-want +got):\n%s", diff)
	}
}

func TestBalancerDrainsRemovedTargets(t *testing.T) {
	b := newTestBalancer(t, nil)
	ctx := t.Context()
	route, err := b.EnsureRoute(ctx, providers.RouteSpec{App: "web", Process: "web", Port: 8080, Health: quickHealth, DeregistrationDelay: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	entered, release := make(chan struct{}), make(chan struct{})
	slow := newBackend(t, "slow", func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
		fmt.Fprint(w, "slow done")
	})
	other := newBackend(t, "other", nil)
	b.register([]string{route.Binding.Target}, slow.addr(), true)

	inflight := make(chan string)
	go func() { inflight <- get(route.Endpoint) }()
	<-entered
	b.register([]string{route.Binding.Target}, other.addr(), true)
	drained := make(chan struct{})
	go func() {
		b.deregister(ctx, []string{route.Binding.Target}, slow.addr())
		close(drained)
	}()
	waitTargetState(t, b, route.ID, slow.addr(), providers.TargetDraining)
	for range 10 {
		if got := get(route.Endpoint); got != "other" {
			t.Errorf("a new request while draining answered %q, want other", got)
		}
	}
	select {
	case <-drained:
		t.Fatal("deregister returned while a request was in flight")
	default:
	}
	close(release)
	if diff := cmp.Diff("slow done", <-inflight); diff != "" {
		t.Errorf("the in-flight request (-want +got):\n%s", diff)
	}
	<-drained
	hs, err := b.Health(ctx, route.ID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]providers.TargetHealth{{Target: other.addr(), State: providers.TargetHealthy}}, hs); diff != "" {
		t.Errorf("targets after draining (-want +got):\n%s", diff)
	}
}

func TestBalancerRouteErrors(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	b := newTestBalancer(t, map[string]int{"busy/web": taken.Addr().(*net.TCPAddr).Port})
	tests := []struct {
		name    string
		spec    providers.RouteSpec
		wantErr error
	}{
		{"a configured port already in use is a conflict", providers.RouteSpec{App: "busy", Process: "web", Port: 8080}, providers.ErrConflict},
		{"https is not served locally", providers.RouteSpec{App: "tls", Process: "web", Port: 8080, Protocol: providers.HTTPS}, providers.ErrUnimplemented},
		{"a missing container port is invalid", providers.RouteSpec{App: "web", Process: "web"}, providers.ErrInvalid},
		{"a bad app name is invalid", providers.RouteSpec{App: "Web", Process: "web", Port: 8080}, providers.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := b.EnsureRoute(t.Context(), tt.spec); !errors.Is(err, tt.wantErr) {
				t.Errorf("EnsureRoute error = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

// BenchmarkBalancer measures requests straight to a backend, through a
// plain httputil.ReverseProxy and through the local balancer (health
// checks, weights and draining included), in one run; compare the
// balancer's ns/op with the plain proxy's.
func BenchmarkBalancer(b *testing.B) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer backend.Close()
	bal := newBalancer(BalancerName, filepath.Join(b.TempDir(), "routes.json"), nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer bal.close()
	route, err := bal.EnsureRoute(context.Background(), providers.RouteSpec{App: "bench", Process: "web", Port: 8080})
	if err != nil {
		b.Fatal(err)
	}
	bal.register([]string{route.Binding.Target}, strings.TrimPrefix(backend.URL, "http://"), true)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	run := func(b *testing.B, url string) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				resp, err := client.Get(url)
				if err != nil {
					b.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
	target, _ := url.Parse(backend.URL)
	plain := httputil.NewSingleHostReverseProxy(target)
	plain.Transport = &http.Transport{MaxIdleConnsPerHost: 256}
	proxy := httptest.NewServer(plain)
	defer proxy.Close()
	b.Run("direct", func(b *testing.B) { b.ReportAllocs(); run(b, backend.URL) })
	b.Run("reverseproxy", func(b *testing.B) { b.ReportAllocs(); run(b, proxy.URL) })
	b.Run("balancer", func(b *testing.B) { b.ReportAllocs(); run(b, route.Endpoint) })
}
