package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/convox-go/convox"
	"github.com/convox-go/convox/providers/local"
)

// syncBuffer is a strings.Builder safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// inProcess runs a command line through runCLI in this process.
func inProcess(ctx context.Context, dir string, args ...string) result {
	var stdout, stderr syncBuffer
	code := runCLI(ctx, append(args, "--rack-dir", dir), stdio{
		Stdin: strings.NewReader(""), Stdout: &stdout, Stderr: &stderr,
		Getenv: func(string) string { return "" }, Dir: dir,
	})
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// TestForwarding runs serve and other commands in this process: the
// commands reach serve's rack through its socket, their output and exit
// codes come back, and canceling a forwarded command stops it.
func TestForwarding(t *testing.T) {
	dir := t.TempDir()
	ctx, stopServe := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	served := make(chan int, 1)
	go func() {
		code := runCLI(ctx, []string{"serve", "--verbose", "--rack-dir", dir}, stdio{
			Stdout: pw, Stderr: pw, Getenv: func(string) string { return "" }, Dir: dir,
		})
		pw.Close()
		served <- code
	}()
	lines := bufio.NewScanner(pr)
	var log []string
	for lines.Scan() {
		log = append(log, lines.Text())
		if strings.HasPrefix(lines.Text(), "convox serve: serving") {
			break
		}
	}
	rest := make(chan []string)
	go func() {
		var more []string
		for lines.Scan() {
			more = append(more, lines.Text())
		}
		rest <- more
	}()

	if r := inProcess(context.Background(), dir, "apps", "create", "web"); r.code != 0 || r.stdout == "" {
		t.Fatalf("apps create: %v", r)
	}
	r := inProcess(context.Background(), dir, "apps", "list", "--json")
	var apps []appJSON
	if err := json.Unmarshal([]byte(r.stdout), &apps); err != nil || r.code != 0 {
		t.Fatalf("apps list --json: %v %v", err, r)
	}
	if diff := cmp.Diff([]string{"web"}, []string{apps[0].Name}); diff != "" || len(apps) != 1 {
		t.Errorf("apps (-want +got):\n%s", diff)
	}
	if r := inProcess(context.Background(), dir, "releases", "info", "R1", "-a", "web"); r.code != 1 || !strings.Contains(r.stderr, "list the releases") {
		t.Errorf("releases info of a missing release: %v", r)
	}
	if r := inProcess(context.Background(), dir, "scale", "web", "-a", "web"); r.code != 2 {
		t.Errorf("scale web: %v", r)
	}

	// A following logs command ends when its caller is interrupted.
	logsCtx, interrupt := context.WithCancel(context.Background())
	done := make(chan result)
	go func() { done <- inProcess(logsCtx, dir, "logs", "-f", "-a", "web") }()
	interrupt()
	if r := <-done; r.code != 0 {
		t.Errorf("interrupted logs -f: %v", r)
	}

	stopServe()
	if code := <-served; code != 0 {
		t.Errorf("serve exited %d", code)
	}
	log = append(log, <-rest...)
	// With --verbose, serve prints each command it ran, by name only.
	var ran []string
	for _, l := range log[1:] {
		// The interrupted logs -f may have reached serve or not.
		if _, after, ok := strings.Cut(l, " ran: "); ok && !strings.HasPrefix(after, "convox logs ") {
			ran = append(ran, after[:strings.Index(after, ",")])
		}
	}
	wantRan := []string{"convox apps create (exit 0", "convox apps list (exit 0", "convox releases info (exit 1", "convox scale (exit 2"}
	if diff := cmp.Diff(wantRan, ran); diff != "" || log[len(log)-1] != "convox serve: stopping" {
		t.Errorf("serve --verbose's output (-want +got commands):\n%s\n%s", diff, strings.Join(log, "\n"))
	}
	serveLog, err := os.ReadFile(filepath.Join(dir, serveLogName))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"ran: convox apps create (exit 0", "ran: convox apps list (exit 0", "ran: convox scale (exit 2"} {
		if !strings.Contains(string(serveLog), want) {
			t.Errorf("serve.log lacks %q:\n%s", want, serveLog)
		}
	}
	// With serve gone, commands open the rack themselves.
	if r := inProcess(context.Background(), dir, "apps", "info", "web"); r.code != 0 || !strings.Contains(r.stdout, "app           web") {
		t.Errorf("apps info after serve: %v", r)
	}
}

func TestParseStrategy(t *testing.T) {
	for _, tc := range []struct {
		in   string
		bake time.Duration
		want string // Strategy.String, or the error
	}{
		{"", 0, "rolling"},
		{"rolling", 0, "rolling"},
		{"blue-green", 0, "blue-green"},
		{"canary", 0, "canary 10%/1m0s → 50%/1m0s"},
		{"canary:10,50", 0, "canary 10%/1m0s → 50%/1m0s"},
		{"canary:5%,25%,75%", 30 * time.Second, "canary 5%/30s → 25%/30s → 75%/30s"},
		{"canary:50,10", 0, `canary percentages "50,10": give ascending whole numbers between 1 and 99, e.g. canary:10,50`},
		{"canary:0", 0, `canary percentages "0": give ascending whole numbers between 1 and 99, e.g. canary:10,50`},
		{"canary:100", 0, `canary percentages "100": give ascending whole numbers between 1 and 99, e.g. canary:10,50`},
		{"canary:", 0, `canary percentages "": give ascending whole numbers between 1 and 99, e.g. canary:10,50`},
		{"fast", 0, `unknown strategy "fast": use rolling, blue-green or canary:10,50`},
		{"rolling", -time.Second, "--bake must not be negative"},
	} {
		s, err := parseStrategy(tc.in, tc.bake)
		got := s.String()
		if err != nil {
			got = err.Error()
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("parseStrategy(%q, %v) (-want +got):\n%s", tc.in, tc.bake, diff)
		}
	}
	if s, _ := parseStrategy("canary:10", 0); s.String() != convox.Canary(10).String() {
		t.Errorf("canary:10 = %s, want %s", s, convox.Canary(10))
	}
}

func TestParseScale(t *testing.T) {
	type out struct {
		Process string
		Count   int
		Err     string
	}
	for _, tc := range []struct {
		args []string
		want out
	}{
		{[]string{"web=2"}, out{"web", 2, ""}},
		{[]string{"worker=0"}, out{"worker", 0, ""}},
		{[]string{"web"}, out{Err: `"web" is not PROCESS=COUNT, e.g. web=2`}},
		{[]string{"=2"}, out{Err: `"=2" is not PROCESS=COUNT, e.g. web=2`}},
		{[]string{"web=two"}, out{Err: `count "two" of web is not a whole number of 0 or more`}},
		{[]string{"web=-1"}, out{Err: `count "-1" of web is not a whole number of 0 or more`}},
		{[]string{"web=1", "worker=2"}, out{Err: "scale needs one PROCESS=COUNT argument, e.g. convox scale web=2"}},
		{nil, out{Err: "scale needs one PROCESS=COUNT argument, e.g. convox scale web=2"}},
	} {
		p, n, err := parseScale(tc.args)
		got := out{Process: p, Count: n}
		if err != nil {
			got = out{Err: err.Error()}
			if _, ok := err.(*usageError); !ok {
				t.Errorf("parseScale(%q) error %T is not a usage error", tc.args, err)
			}
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("parseScale(%q) (-want +got):\n%s", tc.args, diff)
		}
	}
}

func TestParseInterspersed(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		wantPos []string
		wantF   bool
		wantS   string
	}{
		{[]string{"a", "-f", "b"}, []string{"a", "b"}, true, ""},
		{[]string{"-s", "x", "a"}, []string{"a"}, false, "x"},
		{[]string{"web", "--", "server", "-f", "--s"}, []string{"web", "--", "server", "-f", "--s"}, false, ""},
		{[]string{"web", "-f", "--"}, []string{"web", "--"}, true, ""},
		{nil, nil, false, ""},
	} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		f := fs.Bool("f", false, "")
		s := fs.String("s", "", "")
		pos, err := parseInterspersed(fs, tc.args)
		if err != nil {
			t.Fatalf("parseInterspersed(%q): %v", tc.args, err)
		}
		if diff := cmp.Diff(tc.wantPos, pos); diff != "" || *f != tc.wantF || *s != tc.wantS {
			t.Errorf("parseInterspersed(%q): f=%v s=%q, positional (-want +got):\n%s", tc.args, *f, *s, diff)
		}
	}
}

func TestParseAssignments(t *testing.T) {
	for _, tc := range []struct {
		args  []string
		stdin string
		want  map[string]string
		err   string
	}{
		{[]string{"A=1", "B="}, "", map[string]string{"A": "1", "B": ""}, ""},
		{[]string{"URL=http://x/?a=b"}, "", map[string]string{"URL": "http://x/?a=b"}, ""},
		{[]string{"TOKEN=-"}, "s3cret\n", map[string]string{"TOKEN": "s3cret"}, ""},
		{[]string{"A=-", "B=-"}, "x", nil, "only one value can be read from standard input (A and B ask for it)"},
		{[]string{"A"}, "", nil, `"A" is not KEY=VALUE`},
		{[]string{"=1"}, "", nil, `"=1" is not KEY=VALUE`},
		{[]string{"A=1", "A=2"}, "", nil, "A is given twice"},
		{nil, "", nil, "env set needs at least one KEY=VALUE"},
	} {
		got, err := parseAssignments(tc.args, strings.NewReader(tc.stdin))
		gotErr := ""
		if err != nil {
			gotErr = err.Error()
		}
		if diff := cmp.Diff(tc.want, got); diff != "" || gotErr != tc.err {
			t.Errorf("parseAssignments(%q): error %q (want %q), vars (-want +got):\n%s", tc.args, gotErr, tc.err, diff)
		}
	}
}

func TestBar(t *testing.T) {
	for _, tc := range []struct {
		p    convox.Progress
		want string
	}{
		{convox.Progress{}, "[                    ]"},
		{convox.Progress{Running: 1, Desired: 2, Healthy: 0, Targets: 2}, "[=====               ]"},
		{convox.Progress{Running: 2, Desired: 2, Healthy: 2, Targets: 2}, "[====================]"},
		{convox.Progress{Running: 1, Desired: 1}, "[====================]"},
	} {
		if diff := cmp.Diff(tc.want, bar(tc.p)); diff != "" {
			t.Errorf("bar(%+v) (-want +got):\n%s", tc.p, diff)
		}
	}
}

// TestWaitThenForward starts a command while another program holds the
// rack without accepting commands; once the holder starts accepting them,
// the waiting command runs inside it.
func TestWaitThenForward(t *testing.T) {
	dir := t.TempDir()
	rack, err := local.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	var stdout, stderr syncBuffer
	waiting := make(chan struct{})
	stderrW := writerFunc(func(p []byte) (int, error) {
		if strings.Contains(string(p), "waiting up to 30s for the rack") {
			close(waiting)
		}
		return stderr.Write(p)
	})
	done := make(chan int)
	go func() {
		done <- runCLI(context.Background(), []string{"apps", "create", "web", "--rack-dir", dir}, stdio{
			Stdout: &stdout, Stderr: stderrW, Getenv: func(string) string { return "" }, Dir: dir,
		})
	}()
	<-waiting
	h := hold(context.Background(), rack, "test")
	var log syncBuffer
	h.setLog(&log, nil)
	if code := <-done; code != 0 {
		t.Fatalf("apps create: exit %d\n%s%s", code, stdout.String(), stderr.String())
	}
	if err := h.close(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(log.String(), "ran: convox apps create (exit 0") {
		t.Errorf("the waiting command did not run in the holder; its log:\n%s", log.String())
	}
	if !strings.HasPrefix(stdout.String(), "created app web\n") {
		t.Errorf("apps create output: %q", stdout.String())
	}
}

// TestProgress checks the deploy progress output on a terminal (one status
// line redrawn in place) and elsewhere (one line per event).
func TestProgress(t *testing.T) {
	events := []convox.Event{
		{Type: convox.EventReleaseCreated, Release: "R2", Message: "release R2 created from web:v2"},
		{Type: convox.EventStep, Release: "R2", Step: convox.StepApply, Message: "applying R2 to scheduler default"},
		{Type: convox.EventWaiting, Release: "R2", Step: convox.StepWait, Progress: &convox.Progress{Desired: 2, Targets: 2, Limit: time.Minute}},
		{Type: convox.EventWaiting, Release: "R2", Step: convox.StepWait, Progress: &convox.Progress{Running: 2, Desired: 2, Healthy: 1, Targets: 2, Elapsed: 2 * time.Second, Limit: time.Minute}},
		{Type: convox.EventDeploySucceeded, Release: "R2", Message: "R2 is active and healthy"},
	}
	for _, tc := range []struct {
		tty  bool
		want string
	}{
		{false, `release R2 created from web:v2
applying R2 to scheduler default
R2 wait: 0/2 running, 0/2 healthy, 0s of 1m0s
R2 wait: 2/2 running, 1/2 healthy, 2s of 1m0s
R2 is active and healthy
`},
		{true, "release R2 created from web:v2\napplying R2 to scheduler default\n" +
			"\r\x1b[KR2 wait [                    ] 0/2 running, 0/2 healthy, 0s of 1m0s" +
			"\r\x1b[KR2 wait [===============     ] 2/2 running, 1/2 healthy, 2s of 1m0s\n" +
			"R2 is active and healthy\n"},
	} {
		var out strings.Builder
		p := &progress{w: &out, tty: tc.tty}
		for _, e := range events {
			p.event(e)
		}
		p.endLine()
		if diff := cmp.Diff(tc.want, out.String()); diff != "" {
			t.Errorf("tty %t (-want +got):\n%s", tc.tty, diff)
		}
	}
}

// TestFlagMessage checks that flag errors show flags as they are written,
// with two dashes (one for one-letter shorthands).
func TestFlagMessage(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"unknown flag", []string{"--fast"}, "unknown flag --fast"},
		{"unknown shorthand", []string{"-x"}, "unknown flag -x"},
		{"missing value", []string{"--app"}, "--app needs a value"},
		{"malformed value", []string{"--wait", "soon"}, `invalid value "soon" for --wait: parse error`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := flag.NewFlagSet("t", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			(&globals{}).register(fs)
			err := fs.Parse(tc.args)
			if err == nil {
				t.Fatalf("Parse(%q) succeeded", tc.args)
			}
			if diff := cmp.Diff(tc.want, flagMessage(err)); diff != "" {
				t.Errorf("flagMessage (-want +got):\n%s", diff)
			}
		})
	}
}

// TestUserMessage checks how an SDK error reads: the app and release it
// is about, its operation only with --debug.
func TestUserMessage(t *testing.T) {
	sdkErr := &convox.Error{Op: "Deploy", App: "web", Release: "R3", Err: errors.New("invalid argument: bad")}
	for _, tc := range []struct {
		name  string
		err   error
		debug bool
		want  string
	}{
		{"an SDK error names its objects", sdkErr, false, "app web release R3: invalid argument: bad"},
		{"--debug shows the operation", sdkErr, true, "Deploy web R3: invalid argument: bad"},
		{"a wrapped SDK error", fmt.Errorf("open: %w", sdkErr), false, "open: app web release R3: invalid argument: bad"},
		{"a hostile app name is quoted", &convox.Error{Op: "CreateApp", App: "x\nconvox: ok", Err: errors.New("invalid")}, false, `app "x\nconvox: ok": invalid`},
		{"a path is quoted", &convox.Error{Op: "CreateApp", App: "../x", Err: errors.New("invalid")}, false, `app "../x": invalid`},
		{"another error is kept", errors.New("convox: something"), false, "something"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, userMessage(tc.err, tc.debug)); diff != "" {
				t.Errorf("userMessage (-want +got):\n%s", diff)
			}
		})
	}
}
