package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/v1/random"

	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/fake"
)

// TestPartsRunShort runs every part as CI does (-short, one at a time):
// each must measure without an error and print its header and goals.
func TestPartsRunShort(t *testing.T) {
	if testing.Short() {
		t.Skip("the benchmark parts start real servers; skipped with -short")
	}
	for _, p := range parts {
		t.Run(p.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(t.Context(), []string{"-short", "-only", p.name}, &stdout, &stderr)
			t.Logf("output of bench -short -only %s:\n%s%s", p.name, stdout.String(), stderr.String())
			if code != 0 {
				t.Fatalf("exit code %d, want 0", code)
			}
			out := stdout.String()
			if !strings.Contains(out, "== "+p.name+": ") {
				t.Errorf("the output has no header for %s", p.name)
			}
			if !strings.Contains(out, "GOAL MET: ") && !strings.Contains(out, "GOAL MISSED: ") {
				t.Errorf("the output of %s states no goal", p.name)
			}
			for _, line := range partReports[p.name] {
				if !strings.Contains(out, line) {
					t.Errorf("the output of %s does not report %q", p.name, line)
				}
			}
		})
	}
}

// partReports are lines (or their beginnings) each part's report must
// hold, whatever the numbers.
var partReports = map[string][]string{
	"proxy":    {"ratio local/reverseproxy requests/s = ", "ratio local/reverseproxy p99 latency = ", "local/reverseproxy p99 latency = "},
	"status":   {"DescribeServices calls per poll: batched (StatusMany) ", "one-per-service/batched DescribeServices calls per poll = "},
	"deploy":   {"time per deploy: ", "allocations per deploy: ", "  history    10: ", "  history  1000: ", "rollback time with 1000/10 releases of history = "},
	"many":     {"deploys: 100 succeeded, 0 failed", "control, client limiter off: 200 apps, ", "throttling errors seen = "},
	"logs":     {"endpoint: ", "Write: 10000 events", "BufferedWriter: 10000 events", "PutLogEvents calls above the API minimum = "},
	"registry": {"crane: go-containerregistry v", "  imagecopy ", "  crane     ", "re-copy by imagecopy of the same image again: 0 layer bytes", "imagecopy/crane copy time = "},
}

func TestBucketRefusesCallsOverItsLimit(t *testing.T) {
	b := newBucket(10, 2) // 10 calls/s, bursts of 2
	t0 := time.Unix(1000, 0)
	var got []bool
	for _, at := range []time.Duration{0, 0, 0, 50 * time.Millisecond, 100 * time.Millisecond, 100 * time.Millisecond, time.Second, time.Second, time.Second} {
		got = append(got, b.take(t0.Add(at)))
	}
	want := []bool{true, true, false, false, true, false, true, true, false}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("take (-want +got):\n%s", diff)
	}
	if b.admitted != 5 || b.refused != 4 {
		t.Errorf("admitted %d, refused %d; want 5 and 4", b.admitted, b.refused)
	}
}

func TestAccountThrottlesOnlyTheLimitedMethods(t *testing.T) {
	a := newAccount(0.001, 1)
	ran := 0
	next := func(context.Context) error { ran++; return nil }
	health := fake.Call{Provider: "Balancer", Balancer: "fake", Method: "Health"}
	other := fake.Call{Provider: "Balancer", Balancer: "other", Method: "Health"}
	store := fake.Call{Provider: "Store", Method: "Get"}
	for _, c := range []fake.Call{health, health, other, store, store} {
		_ = a.hook(t.Context(), c, next)
	}
	err := a.hook(t.Context(), health, next)
	if !errors.Is(err, providers.ErrThrottled) {
		t.Errorf("a call over the limit returned %v, want ErrThrottled", err)
	}
	if diff := cmp.Diff(map[string]int{"Balancer.Health": 2}, a.throttled); diff != "" {
		t.Errorf("throttled (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]int{"Balancer.Health": 4, "Store.Get": 2}, a.calls); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
	if ran != 4 {
		t.Errorf("%d calls ran, want 4 (each balancer's first Health and the store's)", ran)
	}
}

func TestUploadsCountBlobBytesByDigest(t *testing.T) {
	r := startRegistry()
	defer r.close()
	img, err := random.Image(64<<10, 2)
	if err != nil {
		t.Fatal(err)
	}
	_, layers, size, err := describeImage(img)
	if err != nil {
		t.Fatal(err)
	}
	if err := push(t.Context(), r, img); err != nil {
		t.Fatal(err)
	}
	lb, ob := r.uploads.split(layers)
	if diff := cmp.Diff([2]int64{layerBytesOf(img), size - layerBytesOf(img)}, [2]int64{lb, ob}); diff != "" {
		t.Errorf("layer and other bytes of a first push (-want +got):\n%s", diff)
	}
	r.uploads.reset()
	if err := push(t.Context(), r, img); err != nil {
		t.Fatal(err)
	}
	if lb, ob := r.uploads.split(layers); lb != 0 || ob != 0 {
		t.Errorf("a second push uploaded %d layer and %d other bytes, want none", lb, ob)
	}
}

func TestMixedEntriesHaveMixedSizesInOrder(t *testing.T) {
	entries := mixedEntries(10000, "app")
	var short, long int
	for i, e := range entries {
		if n := len(e.Message); n < 200 {
			short++
		} else if n >= 2000 {
			long++
		}
		if i > 0 && !e.Time.After(entries[i-1].Time) {
			t.Fatalf("entry %d is not after entry %d", i, i-1)
		}
	}
	if short < 6500 || short > 7500 || long < 300 || long > 700 {
		t.Errorf("%d short and %d long messages of 10,000; want about 7,000 and 500", short, long)
	}
}

func TestGoalLinesSayMetOrMissed(t *testing.T) {
	var b strings.Builder
	goalAtMost(&b, "a", 1.0, 1.0)
	goalAtMost(&b, "b", 1.01, 1.0)
	goalCount(&b, "c", 0, 0)
	goalCount(&b, "d", 2, 1)
	goalUnder(&b, "e", 999*time.Microsecond, time.Millisecond)
	goalUnder(&b, "f", time.Millisecond, time.Millisecond)
	want := `GOAL MET: a = 1.00 (goal ≤ 1.00)
GOAL MISSED: b = 1.01 (goal ≤ 1.00)
GOAL MET: c = 0 (goal 0)
GOAL MISSED: d = 2 (goal ≤ 1)
GOAL MET: e = 999µs (goal < 1ms)
GOAL MISSED: f = 1ms (goal < 1ms)
`
	if diff := cmp.Diff(want, b.String()); diff != "" {
		t.Errorf("goal lines (-want +got):\n%s", diff)
	}
}

// TestUsageErrorsExitTwo checks that bad arguments run nothing and say why.
func TestUsageErrorsExitTwo(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		says string
	}{
		{"an unknown part", []string{"-only", "nope"}, `no part named "nope"`},
		{"an unknown flag", []string{"-fast"}, "flag provided but not defined: -fast"},
		{"a stray argument", []string{"proxy"}, `unexpected arguments ["proxy"]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(t.Context(), tc.args, &stdout, &stderr)
			if diff := cmp.Diff(2, code); diff != "" {
				t.Errorf("exit code (-want +got):\n%s", diff)
			}
			if stdout.Len() > 0 {
				t.Errorf("a usage error printed a report:\n%s", stdout.String())
			}
			if !strings.Contains(stderr.String(), tc.says) {
				t.Errorf("stderr does not say %q:\n%s", tc.says, stderr.String())
			}
		})
	}
}

// wrkReport is what wrk 4.1 prints with --latency.
const wrkReport = `Running 5s test @ http://127.0.0.1:41000/
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.10ms  412.00us   9.46ms   70.49%
    Req/Sec    29.07k     1.86k   32.24k    90.91%
  Latency Distribution
     50%    1.02ms
     75%    1.38ms
     90%    1.61ms
     99%  %s
  145321 requests in 5.00s, 17.74MB read
%sRequests/sec:  29064.20
Transfer/sec:      3.55MB
`

func TestParseWrkReadsCountsAndP99(t *testing.T) {
	for _, tc := range []struct {
		name   string
		p99    string
		errors string
		want   loadResult
	}{
		{"a clean run", "2.11ms", "", loadResult{ok: 145321, elapsed: 5 * time.Second, p99: 2110 * time.Microsecond}},
		{"microseconds", "870.00us", "", loadResult{ok: 145321, elapsed: 5 * time.Second, p99: 870 * time.Microsecond}},
		{
			"failed requests",
			"1.00s",
			"  Socket errors: connect 1, read 2, write 0, timeout 3\n  Non-2xx or 3xx responses: 21\n",
			loadResult{ok: 145300, failed: 27, elapsed: 5 * time.Second, p99: time.Second},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseWrk(strings.Replace(strings.Replace(wrkReport, "%s", tc.p99, 1), "%s", tc.errors, 1))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(loadResult{})); diff != "" {
				t.Errorf("parseWrk (-want +got):\n%s", diff)
			}
		})
	}
	if _, err := parseWrk("unable to connect to 127.0.0.1:1 Connection refused\n"); err == nil {
		t.Error("parseWrk accepted a report without numbers")
	}
}

func TestPercentileAndMedian(t *testing.T) {
	descending := func(n int) []time.Duration {
		var ds []time.Duration
		for i := n; i > 0; i-- {
			ds = append(ds, time.Duration(i)*time.Millisecond)
		}
		return ds
	}
	ms := func(ns ...int) []time.Duration {
		var ds []time.Duration
		for _, n := range ns {
			ds = append(ds, time.Duration(n)*time.Millisecond)
		}
		return ds
	}
	for _, tc := range []struct {
		name string
		in   []time.Duration
		q    float64
		want time.Duration
	}{
		{"empty", nil, 0.99, 0},
		{"one", ms(7), 0.99, 7 * time.Millisecond},
		{"p99 of 1ms to 100ms is 99ms", descending(100), 0.99, 99 * time.Millisecond},
		{"median of four is the lower middle", ms(4, 1, 3, 2), 0.5, 2 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, percentile(tc.in, tc.q)); diff != "" {
				t.Errorf("percentile(%v) (-want +got):\n%s", tc.q, diff)
			}
		})
	}
	rounds := []loadResult{
		{ok: 300, elapsed: time.Second, p99: 3},
		{ok: 100, elapsed: time.Second, p99: 1},
		{ok: 200, elapsed: time.Second, p99: 2},
	}
	if diff := cmp.Diff(rounds[2], median(rounds), cmp.AllowUnexported(loadResult{})); diff != "" {
		t.Errorf("median (-want +got):\n%s", diff)
	}
}

// TestProxyProfileWritesOneProfilePerRound runs the proxy part briefly with
// -proxyprofile: its one round of the local balancer leaves one profile.
func TestProxyProfileWritesOneProfilePerRound(t *testing.T) {
	if testing.Short() {
		t.Skip("the proxy part starts real servers; skipped with -short")
	}
	prefix := filepath.Join(t.TempDir(), "cpu.pprof")
	var stdout, stderr bytes.Buffer
	if code := run(t.Context(), []string{"-short", "-only", "proxy", "-proxyprofile", prefix}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit code %d, want 0\n%s%s", code, stdout.String(), stderr.String())
	}
	got, err := filepath.Glob(prefix + ".*")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{prefix + ".1"}, got); diff != "" {
		t.Fatalf("profile files (-want +got):\n%s", diff)
	}
	fi, err := os.Stat(got[0])
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() == 0 || fi.Mode().Perm() != 0o600 {
		t.Errorf("profile %s: %d bytes, mode %v; want a non-empty file of mode 0600", got[0], fi.Size(), fi.Mode().Perm())
	}
}
