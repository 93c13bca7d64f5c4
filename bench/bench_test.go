package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
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
		})
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
