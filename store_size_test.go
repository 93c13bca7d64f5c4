package convox

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/convox-go/convox/providers"
)

// largestRelease is the largest release document the default limits
// allow, with an image whose configuration is empty.
func largestRelease() *releaseDoc {
	lim := providers.DefaultLimits()
	r := &releaseDoc{
		App: strings.Repeat("a", providers.MaxAppName), Seq: 1 << 62, Parent: "R4611686018427387904",
		ImageRef: strings.Repeat("i", providers.MaxImageRef), Registry: strings.Repeat("r", providers.MaxResourceName),
		Image:       providers.Image{Repository: strings.Repeat("i", providers.MaxImageRef), Digest: "sha256:" + strings.Repeat("0", 64), Tag: strings.Repeat("t", 128)},
		Description: strings.Repeat("d", providers.MaxDescription), Reason: strings.Repeat("x", 4096),
		Env: map[string]envDoc{}, Created: time.Now(), Promoted: time.Now(),
	}
	// The environment: MaxEnvBytes counts "NAME=value" and a terminator.
	for i, left := 0, lim.MaxEnvBytes; left > 0 && i < lim.MaxEnvVars; i++ {
		name := fmt.Sprintf("V%d", i)
		n := min(lim.MaxEnvValue, left-len(name)-2)
		if n < 0 {
			break
		}
		r.Env[name] = envDoc{Value: strings.Repeat("v", n), Secret: true}
		left -= len(name) + n + 2
	}
	for i := range lim.MaxProcesses {
		cmd := make([]string, providers.MaxCommandArgs)
		for j := range cmd {
			cmd[j] = strings.Repeat("c", providers.MaxCommandBytes/providers.MaxCommandArgs-1)
		}
		r.Processes = append(r.Processes, Process{
			Name: fmt.Sprintf("p%011d", i), Command: cmd, Count: lim.MaxCount, CPU: providers.MaxCPU, Memory: providers.MaxMemory, Port: providers.MaxPort,
			Health: providers.HealthCheck{Path: "/" + strings.Repeat("h", providers.MaxHealthPath-1), Grace: providers.MaxHealthGrace, Interval: providers.MaxHealthInterval, Timeout: providers.MaxHealthTimeout, Healthy: providers.MaxHealthThreshold, Unhealthy: providers.MaxHealthThreshold},
			Route:  RouteConfig{Protocol: providers.HTTPS, Host: strings.Repeat("h", providers.MaxRouteField), Path: strings.Repeat("p", providers.MaxRouteField), Certificate: strings.Repeat("c", providers.MaxRouteField), DeregistrationDelay: providers.MaxDeregistrationDelay},
		})
	}
	return r
}

// largestApp is the largest app document: a full history, and every
// process routed on two balancers during a migration, with retired routes.
func largestApp() *appDoc {
	id := strings.Repeat("x", providers.MaxIDLen)
	route := routeDoc{Balancer: strings.Repeat("b", providers.MaxResourceName), ID: id, Endpoint: "https://" + strings.Repeat("e", providers.MaxRouteField),
		Binding: providers.Binding{Balancer: strings.Repeat("b", providers.MaxResourceName), Kind: "target-group", Target: id, Port: providers.MaxPort}}
	route.Live, route.LiveBinding = altSet, &route.Binding
	a := &appDoc{Name: strings.Repeat("a", providers.MaxAppName), Latest: 1 << 62, Active: "R4611686018427387904", LastHealthy: "R4611686018427387904",
		Routes: map[string]routeDoc{}, Migration: &migrationDoc{To: "b", Routes: map[string]routeDoc{}},
		Lease: &leaseDoc{Token: strings.Repeat("t", 16), Holder: strings.Repeat("h", 255), Release: "R4611686018427387904", Previous: "R4611686018427387904"}}
	for range maxHistory {
		a.History = append(a.History, "R4611686018427387904")
	}
	for i := range providers.DefaultMaxProcesses {
		p := fmt.Sprintf("p%011d", i)
		a.Routes[p], a.Migration.Routes[p] = route, route
		a.Retired = append(a.Retired, route)
	}
	return a
}

// TestLargestDocuments checks the value sizes the package doc promises a
// Store implementer (# Store layout).
func TestLargestDocuments(t *testing.T) {
	for _, tc := range []struct {
		name  string
		doc   any
		bound int
	}{
		{"a release document", largestRelease(), 2560 << 10},
		{"an app document", largestApp(), 256 << 10},
	} {
		b, err := json.Marshal(tc.doc)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %d bytes", tc.name, len(b))
		if len(b) > tc.bound {
			t.Errorf("%s is %d bytes, more than the documented %d", tc.name, len(b), tc.bound)
		}
	}
}
