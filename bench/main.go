// Command bench runs the project's benchmarks and prints their numbers, and
// the ratios between them, measured in one run on this machine:
//
//	go run ./bench               # every part, full length
//	go run ./bench -short        # every part, briefly (as CI runs it)
//	go run ./bench -only proxy   # one part
//	go run ./bench -only proxy -proxyprofile cpu.pprof  # and profile the balancer (cpu.pprof.N)
//
// Each part prints a header, its measurements, its ratios and one line per
// goal, "GOAL MET" or "GOAL MISSED". A missed goal is a result, not a
// failure: the command exits non-zero only when a part could not measure
// (an error, a failed request). Everything runs on 127.0.0.1.
//
// Parts, in order:
//
//   - proxy: the same small backend driven directly, through a plain
//     httputil.ReverseProxy, through the local rack's balancer and through
//     nginx with one worker (when nginx is installed); requests per second,
//     p99 latency, and the balancer's ratios to the other two.
//   - status: one status poll of 50 ECS services through the ECS scheduler
//     against the in-process ECS server; DescribeServices calls per poll,
//     batched against one call per service.
//   - deploy: a full deploy on the fake rack through the root API, time and
//     allocations per deploy; a rollback with 10,000 releases of history
//     against one with 10.
//   - many: 1,000 apps deployed at once on the fake rack under the client's
//     shared limiter, with a simulated account rate limit; throttling
//     errors and total time against the limit's lower bound.
//   - logs: 100,000 log events of mixed sizes through the CloudWatch Logs
//     provider (the emulator when CONVOX_TEST_AWS_ENDPOINT is set, else the
//     in-process server); PutLogEvents calls against the API minimum and
//     against one call per event, and events per second.
//   - registry: an image of a few layers copied between two in-process
//     registries by the project's copy and by crane copy, alternately; and
//     the bytes sent when the target already has the layers.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// config is what every part is run with.
type config struct {
	// short runs the part briefly, to check that it works rather than to
	// measure (CI runs every part this way).
	short bool
	// out receives the part's report.
	out io.Writer
	// proxyProfile, when set, names the files (proxyProfile.1, .2, ...)
	// the proxy part writes a CPU profile of this process to, one per
	// round of the local balancer.
	proxyProfile string
}

// part is one benchmark of the command.
type part struct {
	name string
	// about says in one line what the part measures; it heads the report.
	about string
	run   func(ctx context.Context, cfg config) error
}

// parts are run in this order; a new benchmark adds its line here.
var parts = []part{
	{name: "proxy", about: "one backend directly, through httputil.ReverseProxy, the local balancer and nginx", run: runProxy},
	{name: "status", about: "DescribeServices calls per status poll of 50 ECS services, batched vs one per service", run: runStatus},
	{name: "deploy", about: "a full deploy on the fake rack; rollback with 10,000 releases of history vs 10", run: runDeploy},
	{name: "many", about: "1,000 apps deployed at once under the shared limiter and a simulated account rate limit", run: runMany},
	{name: "logs", about: "PutLogEvents calls for 100,000 log events vs the API minimum and one call per event", run: runLogs},
	{name: "registry", about: "registry copy time vs crane copy; bytes sent when the target has the layers", run: runRegistry},
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run runs the command with args and returns its exit code: 0 when every
// selected part measured, 1 when a part failed, 2 on a usage error.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	short := fs.Bool("short", false, "run every part briefly (for CI); the numbers are not meaningful")
	only := fs.String("only", "", "run only the named part")
	proxyProfile := fs.String("proxyprofile", "", "write a CPU profile of each local balancer round of the proxy part to `file`.N")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: bench [-short] [-only NAME]")
		fs.PrintDefaults()
		fmt.Fprintln(stderr, "parts:")
		for _, p := range parts {
			fmt.Fprintf(stderr, "  %-8s %s\n", p.name, p.about)
		}
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "bench: unexpected arguments %q\n", fs.Args())
		fs.Usage()
		return 2
	}
	selected := parts
	if *only != "" {
		selected = nil
		for _, p := range parts {
			if p.name == *only {
				selected = append(selected, p)
			}
		}
		if len(selected) == 0 {
			fmt.Fprintf(stderr, "bench: no part named %q\n", *only)
			fs.Usage()
			return 2
		}
	}
	cfg := config{short: *short, out: stdout, proxyProfile: *proxyProfile}
	mode := "full"
	if cfg.short {
		mode = "short (numbers are not meaningful)"
	}
	fmt.Fprintf(stdout, "bench: %d part(s), %s mode\n", len(selected), mode)
	var failed []error
	for _, p := range selected {
		fmt.Fprintf(stdout, "\n== %s: %s\n", p.name, p.about)
		start := time.Now()
		if err := p.run(ctx, cfg); err != nil {
			fmt.Fprintf(stdout, "FAILED %s: %v\n", p.name, err)
			failed = append(failed, fmt.Errorf("%s: %w", p.name, err))
			if ctx.Err() != nil {
				break
			}
			continue
		}
		fmt.Fprintf(stdout, "(%s took %s)\n", p.name, time.Since(start).Round(100*time.Millisecond))
	}
	if err := errors.Join(failed...); err != nil {
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return 1
	}
	return 0
}

// goal prints whether a measured ratio met its goal (at least min).
func goal(w io.Writer, what string, ratio, min float64) {
	verdict := "GOAL MET"
	if ratio < min {
		verdict = "GOAL MISSED"
	}
	fmt.Fprintf(w, "%s: %s = %.2f (goal ≥ %.2f)\n", verdict, what, ratio, min)
}

// goalAtMost prints whether a measured ratio met its goal (at most max).
func goalAtMost(w io.Writer, what string, ratio, max float64) {
	verdict := "GOAL MET"
	if ratio > max {
		verdict = "GOAL MISSED"
	}
	fmt.Fprintf(w, "%s: %s = %.2f (goal ≤ %.2f)\n", verdict, what, ratio, max)
}

// goalCount prints whether a measured count met its goal (at most max).
func goalCount(w io.Writer, what string, n, max int64) {
	verdict := "GOAL MET"
	if n > max {
		verdict = "GOAL MISSED"
	}
	if max == 0 {
		fmt.Fprintf(w, "%s: %s = %d (goal 0)\n", verdict, what, n)
		return
	}
	fmt.Fprintf(w, "%s: %s = %d (goal ≤ %d)\n", verdict, what, n, max)
}

// goalUnder prints whether a measured duration met its goal (less than limit).
func goalUnder(w io.Writer, what string, d, limit time.Duration) {
	verdict := "GOAL MET"
	if d >= limit {
		verdict = "GOAL MISSED"
	}
	fmt.Fprintf(w, "%s: %s = %s (goal < %s)\n", verdict, what, d, limit)
}
