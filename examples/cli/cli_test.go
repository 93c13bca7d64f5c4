package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// cliBin is the CLI built once for the tests that drive it as a subprocess.
var cliBin struct {
	once sync.Once
	path string
	err  error
	dir  string
}

func TestMain(m *testing.M) {
	code := m.Run()
	if cliBin.dir != "" {
		os.RemoveAll(cliBin.dir)
	}
	os.Exit(code)
}

// buildCLI builds the CLI binary (once per test binary).
func buildCLI(t *testing.T) string {
	t.Helper()
	cliBin.once.Do(func() {
		if cliBin.dir, cliBin.err = os.MkdirTemp("", "convox-cli-test-"); cliBin.err != nil {
			return
		}
		cliBin.path = filepath.Join(cliBin.dir, "convox")
		out, err := exec.Command("go", "build", "-o", cliBin.path, ".").CombinedOutput()
		if err != nil {
			cliBin.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if cliBin.err != nil {
		t.Fatal(cliBin.err)
	}
	return cliBin.path
}

// cliEnv runs the CLI as a subprocess against a local rack in a temp dir.
type cliEnv struct {
	t   *testing.T
	bin string
	dir string // working directory; the rack is its .convox
	app string // CONVOX_APP
	// extraEnv is added to the CLI's environment.
	extraEnv []string
}

func newCLIEnv(t *testing.T) *cliEnv {
	return &cliEnv{t: t, bin: buildCLI(t), dir: t.TempDir()}
}

// result is the outcome of one CLI run.
type result struct {
	code           int
	stdout, stderr string
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// environ is the test's environment without CONVOX_ and AWS_ variables,
// plus extra.
func environ(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CONVOX_") && !strings.HasPrefix(kv, "AWS_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

func (e *cliEnv) command(args ...string) *exec.Cmd {
	cmd := exec.Command(e.bin, args...)
	cmd.Dir = e.dir
	cmd.Env = environ(e.extraEnv...)
	if e.app != "" {
		cmd.Env = append(cmd.Env, "CONVOX_APP="+e.app)
	}
	return cmd
}

// run runs the CLI with args and returns its outcome.
func (e *cliEnv) run(args ...string) result {
	e.t.Helper()
	return e.runStdin("", args...)
}

func (e *cliEnv) runStdin(stdin string, args ...string) result {
	e.t.Helper()
	cmd := e.command(args...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr, cmd.Stdin = &stdout, &stderr, strings.NewReader(stdin)
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		e.t.Fatalf("convox %s: %v", strings.Join(args, " "), err)
	}
	return result{code: cmd.ProcessState.ExitCode(), stdout: stdout.String(), stderr: stderr.String()}
}

// ok runs the CLI and fails the test unless it exits 0.
func (e *cliEnv) ok(args ...string) result {
	e.t.Helper()
	r := e.run(args...)
	if r.code != 0 {
		e.t.Fatalf("convox %s: %v", strings.Join(args, " "), r)
	}
	return r
}

// jsonOut runs the CLI with --json, expecting exit 0, and decodes stdout into v.
func (e *cliEnv) jsonOut(v any, args ...string) {
	e.t.Helper()
	r := e.ok(append(args, "--json")...)
	if err := json.Unmarshal([]byte(r.stdout), v); err != nil {
		e.t.Fatalf("convox %s --json: %v\n%s", strings.Join(args, " "), err, r.stdout)
	}
}

// appDir is the demo app's source directory.
func appDir(t *testing.T) string {
	d, err := filepath.Abs("app")
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// appV2 copies the demo app into a module of its own answering "v2".
func appV2(t *testing.T) string {
	src, err := os.ReadFile(filepath.Join(appDir(t), "main.go"))
	if err != nil {
		t.Fatal(err)
	}
	v2 := strings.Replace(string(src), `getenv("VERSION", "v1")`, `getenv("VERSION", "v2")`, 1)
	if v2 == string(src) {
		t.Fatal("the demo app no longer defaults VERSION to v1")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(v2), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module example.com/demo\n\ngo 1.26\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// must fails the test unless s contains every one of want.
func must(t *testing.T, what, s string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(s, w) {
			t.Errorf("%s does not contain %q:\n%s", what, w, s)
		}
	}
}

// get GETs url until it answers 200 (the rack's processes start again
// when a program opens it) and returns the body.
func get(t *testing.T, url string) string {
	t.Helper()
	var last string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		resp, err := http.Get(url)
		if err != nil {
			last = err.Error()
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			return string(body)
		}
		last = fmt.Sprintf("%d %s", resp.StatusCode, body)
	}
	t.Fatalf("GET %s never answered 200; last: %s", url, last)
	return ""
}

// TestSession drives a whole session through the CLI binary: create,
// build, deploy, scale, env, run, logs, a failed deploy, rollback, release
// history and diff, and serve with commands forwarded to it.
func TestSession(t *testing.T) {
	e := newCLIEnv(t)
	e.app = "web"

	r := e.ok("apps", "create", "web")
	must(t, "apps create", r.stdout, "created app web")

	r = e.ok("build", appDir(t), "--tag", "v1")
	must(t, "build", r.stdout, "pushed web:v1 (sha256:", "convox deploy web:v1 --app web")
	var built buildJSON
	e.jsonOut(&built, "build", appV2(t), "--tag", "v2")
	if built.Image != "web:v2" || !strings.HasPrefix(built.Digest, "sha256:") {
		t.Fatalf("build --json = %+v", built)
	}

	r = e.ok("deploy", "web:v1")
	must(t, "deploy", r.stdout, "release R1 created from web:v1", "R1 wait: ", "R1 is active: web:v1", "web: http://127.0.0.1:")

	r = e.ok("scale", "web=2")
	must(t, "scale", r.stdout, "R2 is active")
	// Without serve, ps would list processes that stop when it exits.
	r = e.ok("ps")
	if r.stdout != "" {
		t.Errorf("ps without serve lists tasks:\n%s", r.stdout)
	}
	must(t, "ps without serve", r.stderr, "web is not being served", "convox serve &")

	e.ok("env", "set", "GREETING=hi", "MODE=test")                         // R3
	e.ok("env", "set", "--secret", "TOKEN=s3cret")                         // R4
	e.ok("env", "unset", "MODE")                                           // R5
	r = e.runStdin("from-stdin\n", "env", "set", "PASSWORD=-", "--secret") // R6
	if r.code != 0 {
		t.Fatalf("env set PASSWORD=-: %v", r)
	}
	r = e.ok("env", "list")
	if diff := cmp.Diff("GREETING=hi\nPASSWORD=<redacted>\nTOKEN=<redacted>\n", r.stdout); diff != "" {
		t.Errorf("env list (-want +got):\n%s", diff)
	}
	var envDoc struct {
		App     string    `json:"app"`
		Release string    `json:"release"`
		Env     []envJSON `json:"env"`
	}
	e.jsonOut(&envDoc, "env", "list")
	wantEnv := []envJSON{{Name: "GREETING", Value: "hi"}, {Name: "PASSWORD", Value: "<redacted>", Secret: true}, {Name: "TOKEN", Value: "<redacted>", Secret: true}}
	if diff := cmp.Diff(wantEnv, envDoc.Env); diff != "" || envDoc.Release != "R6" {
		t.Errorf("env list --json: release %s (want R6), env (-want +got):\n%s", envDoc.Release, diff)
	}

	// One-off processes see the real values and exit with their own code.
	for _, tc := range []struct {
		args   []string
		code   int
		stdout string
	}{
		{[]string{"run", "web", "--", "server", "env", "TOKEN"}, 0, "s3cret\n"},
		{[]string{"run", "web", "--", "server", "env", "PASSWORD"}, 0, "from-stdin\n"},
		{[]string{"run", "web", "--", "server", "exit", "3"}, 3, "exiting with 3\n"},
		{[]string{"run", "web", "--", "server", "env", "MODE"}, 1, "MODE is not set\n"},
		{[]string{"run", "web", "--release", "R3", "--", "server", "env", "MODE"}, 0, "test\n"},
	} {
		r := e.run(tc.args...)
		if r.code != tc.code || r.stdout != tc.stdout {
			t.Errorf("convox %s = exit %d, stdout %q; want exit %d, stdout %q (stderr %q)", strings.Join(tc.args, " "), r.code, r.stdout, tc.code, tc.stdout, r.stderr)
		}
	}
	var ran runJSON
	cmd := e.command("run", "web", "--json", "--", "server", "exit", "4")
	out, err := cmd.Output()
	if cmd.ProcessState.ExitCode() != 4 || json.Unmarshal(out, &ran) != nil {
		t.Fatalf("run --json exit 4: exit %d, %v, %s", cmd.ProcessState.ExitCode(), err, out)
	}
	if diff := cmp.Diff(runJSON{App: "web", Process: "web", Release: "R6", Task: ran.Task, ExitCode: 4, Reason: ran.Reason, Output: []string{"exiting with 4"}}, ran); diff != "" {
		t.Errorf("run --json (-want +got):\n%s", diff)
	}

	// A deploy that crashes is rolled back and exits 1 with the reason.
	r = e.run("env", "set", "CRASH=1") // R7
	if r.code != 1 {
		t.Fatalf("env set CRASH=1 should fail the deploy: %v", r)
	}
	must(t, "failed deploy", r.stderr, "deploy of web R7 failed", "rolled back to R6", "R6 is serving again", "CRASH=1: refusing to start")

	r = e.ok("logs", "--process", "web", "--filter", "listening")
	must(t, "logs", r.stdout, "R1 web/web-", "v1 listening on 127.0.0.1:")
	if strings.Contains(r.stdout, "CRASH") {
		t.Errorf("logs --filter listening shows other lines:\n%s", r.stdout)
	}
	r = e.ok("logs", "--json", "--filter", "deploy of R7 failed")
	var platform []logJSON
	for line := range strings.Lines(r.stdout) {
		var l logJSON
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatalf("logs --json line %q: %v", line, err)
		}
		platform = append(platform, l)
	}
	if len(platform) != 1 || platform[0].Stream != "convox" || platform[0].Release != "R7" {
		t.Errorf("logs --json --filter: %+v", platform)
	}

	r = e.ok("rollback", "R1") // R8
	must(t, "rollback", r.stdout, "rolling back to R1 as R8", "R8 is active: web:v1")

	var rels []releaseJSON
	e.jsonOut(&rels, "releases", "list")
	type row struct{ ID, Status, Parent, ImageRef string }
	var got []row
	for _, rel := range rels {
		got = append(got, row{rel.ID, rel.Status, rel.Parent, rel.ImageRef})
		for k, v := range rel.Secrets {
			if v != "<redacted>" {
				t.Errorf("release %s shows secret %s as %q", rel.ID, k, v)
			}
		}
	}
	want := []row{
		{"R8", "active", "R1", "web:v1"}, {"R7", "failed", "", "web:v1"}, {"R6", "superseded", "", "web:v1"},
		{"R5", "superseded", "", "web:v1"}, {"R4", "superseded", "", "web:v1"}, {"R3", "superseded", "", "web:v1"},
		{"R2", "superseded", "", "web:v1"}, {"R1", "superseded", "", "web:v1"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("releases list --json (-want +got):\n%s", diff)
	}
	r = e.ok("releases", "list")
	must(t, "releases list", r.stdout, "RELEASE", "R8       active")
	var descriptions []string
	for _, rel := range rels {
		descriptions = append(descriptions, rel.ID+" "+rel.Description)
	}
	wantDescriptions := []string{"R8 rollback to R1", "R7 env set CRASH", "R6 env set PASSWORD", "R5 env unset MODE",
		"R4 env set TOKEN", "R3 env set GREETING MODE", "R2 scale web=2", "R1 deploy web:v1"}
	if diff := cmp.Diff(wantDescriptions, descriptions); diff != "" {
		t.Errorf("release descriptions (-want +got):\n%s", diff)
	}

	r = e.ok("releases", "diff", "R1", "R6")
	wantDiff := `R1 → R6: env +GREETING +PASSWORD +TOKEN; web count 1 → 2
  env    +GREETING added
  env    +PASSWORD added (secret)
  env    +TOKEN added (secret)
  web  count 1 → 2
`
	if diff := cmp.Diff(wantDiff, r.stdout); diff != "" {
		t.Errorf("releases diff (-want +got):\n%s", diff)
	}
	var plan planJSON
	e.jsonOut(&plan, "releases", "diff", "R6", "R8")
	if plan.From != "R6" || plan.To != "R8" || plan.Empty || len(plan.Env) != 3 || len(plan.Processes) != 1 {
		t.Errorf("releases diff --json = %+v", plan)
	}
	r = e.ok("releases", "info", "R6")
	must(t, "releases info", r.stdout, "TOKEN=<redacted>", "PASSWORD=<redacted>", "web  count=2 port=8080 health=/")
	for _, secret := range []string{"s3cret", "from-stdin"} {
		if strings.Contains(r.stdout, secret) {
			t.Errorf("releases info shows a secret value:\n%s", r.stdout)
		}
	}

	// serve holds the rack: the app answers, and commands run inside it.
	var app appJSON
	e.jsonOut(&app, "apps", "info")
	url := app.Endpoints["web"]
	if url == "" {
		t.Fatalf("apps info --json has no web endpoint: %+v", app)
	}
	serve := e.command("serve")
	stdout, err := serve.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var serveErr strings.Builder
	serve.Stderr = &serveErr
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(stdout)
	var served []string
	for lines.Scan() {
		served = append(served, lines.Text())
		if strings.HasPrefix(lines.Text(), "convox serve: serving") {
			break
		}
	}
	if got := get(t, url); got != "hello from v1\n" {
		t.Errorf("GET %s = %q, want v1", url, got)
	}
	r = e.ok("deploy", "web:v2", "--strategy", "canary:50", "--bake", "1s")
	must(t, "forwarded canary deploy", r.stdout, "staging R9 beside the serving release", "sending 50% of traffic to R9",
		"R9 bake: ", "sending 100% of traffic to R9", "R9 is active: web:v2")
	if strings.Contains(r.stdout, "stops serving") {
		t.Errorf("a deploy run inside serve says the rack stops serving:\n%s", r.stdout)
	}
	if got := get(t, url); got != "hello from v2\n" {
		t.Errorf("GET %s after deploying v2 = %q", url, got)
	}
	r = e.run("run", "web", "--", "server", "exit", "5")
	if r.code != 5 || r.stdout != "exiting with 5\n" {
		t.Errorf("run forwarded to serve: %v", r)
	}
	var tasks []taskJSON
	e.jsonOut(&tasks, "ps")
	running := 0
	for _, tk := range tasks {
		if tk.Release == "R9" && tk.State == "running" && tk.Process == "web" {
			running++
		}
	}
	if running != 1 {
		t.Errorf("ps under serve shows %d running tasks of R9, want 1: %+v", running, tasks)
	}
	e.ok("env", "set", "--secret", "API_KEY=hunter2") // R10, forwarded to serve
	if err := serve.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	for lines.Scan() {
		served = append(served, lines.Text())
	}
	if err := serve.Wait(); err != nil {
		t.Errorf("serve: %v\n%s", err, serveErr.String())
	}
	// serve is quiet: a status line at start and one at the end; the
	// commands it ran are in its log, by name only.
	wantServed := []string{
		"convox serve: serving 1 app (1 endpoint) from " + filepath.Join(e.dir, ".convox") + ", pid " + fmt.Sprint(serve.Process.Pid) +
			"; commands are logged to " + filepath.Join(e.dir, ".convox", "serve.log") + "; Ctrl-C stops",
		"convox serve: stopping",
	}
	if diff := cmp.Diff(wantServed, served); diff != "" || serveErr.Len() > 0 {
		t.Errorf("serve's output (-want +got):\n%s\nstderr: %s", diff, serveErr.String())
	}
	serveLog, err := os.ReadFile(filepath.Join(e.dir, ".convox", "serve.log"))
	if err != nil {
		t.Fatal(err)
	}
	must(t, "serve.log", string(serveLog), "ran: convox deploy (exit 0, ", "ran: convox run (exit 5, ", "ran: convox env set (exit 0, ", "stopping")
	for _, leak := range []string{"hunter2", "API_KEY", "canary:50", "web:v2"} {
		if strings.Contains(string(serveLog), leak) {
			t.Errorf("serve.log shows an argument (%q):\n%s", leak, serveLog)
		}
	}
	if fi, err := os.Stat(filepath.Join(e.dir, ".convox", "serve.log")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("serve.log mode: %v %v, want 0600", fi.Mode(), err)
	}

	// Once serve is gone the next command opens the rack itself.
	e.jsonOut(&app, "apps", "info")
	if app.Active != "R10" || app.Served {
		t.Errorf("after serve, apps info = active %s, served %t; want R10, not served", app.Active, app.Served)
	}
	r = e.ok("apps", "info")
	must(t, "apps info without serve", r.stdout, "endpoint      web "+url+" (not served)")
	must(t, "apps info without serve", r.stderr, "web is not being served", "convox serve &")
	r = e.ok("logs", "-f", "--filter", "listening")
	must(t, "logs -f without serve", r.stdout, "v2 listening on")
	must(t, "logs -f without serve", r.stderr, "web is not being served", "then follow with: convox logs -f")
}

// TestErrors checks exit codes and messages of bad input.
func TestErrors(t *testing.T) {
	e := newCLIEnv(t)
	e.ok("apps", "create", "web")
	e.ok("build", appDir(t), "--tag", "v1", "--app", "web")

	type errorCase struct {
		name   string
		args   []string
		code   int
		stderr []string
	}
	check := func(cases []errorCase) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				r := e.run(tc.args...)
				if r.code != tc.code {
					t.Errorf("convox %s: exit %d, want %d\n%v", strings.Join(tc.args, " "), r.code, tc.code, r)
				}
				must(t, "stderr", r.stderr, tc.stderr...)
			})
		}
	}
	check([]errorCase{
		{"scale before any deploy", []string{"scale", "web=2", "-a", "web"}, 1, []string{"convox scale: app web has no release yet\ndeploy one first: convox build DIR --app web --tag v1, then convox deploy web:v1 --app web"}},
		{"run before any deploy", []string{"run", "web", "-a", "web", "--", "server"}, 1, []string{"convox run: app web: ", "no active release", "deploy a release first: convox deploy IMAGE --app web"}},
		{"env set before any deploy", []string{"env", "set", "A=1", "-a", "web"}, 1, []string{"convox env set: app web has no release yet", "deploy one first"}},
		{"env unset before any deploy", []string{"env", "unset", "A", "-a", "web"}, 1, []string{"convox env unset: app web has no release yet", "deploy one first"}},
	})
	e.ok("deploy", "web:v1", "-a", "web")
	check([]errorCase{
		{"unknown app", []string{"deploy", "web:v1", "-a", "nope"}, 1, []string{`app "nope" not found`, "create it with: convox apps create nope"}},
		{"unknown app of releases", []string{"releases", "list", "--app", "nope"}, 1, []string{`app "nope" not found`}},
		{"malformed image reference", []string{"deploy", "web v1", "-a", "web"}, 2, []string{`image reference "web v1" contains whitespace`}},
		{"missing image", []string{"deploy", "web:v9", "-a", "web"}, 1, []string{"web:v9", "not found", "push the image first: convox build DIR --app web"}},
		{"scale without count", []string{"scale", "web", "-a", "web"}, 2, []string{`convox scale: "web" is not PROCESS=COUNT`, `run "convox help scale" for usage`}},
		{"scale of an unknown process", []string{"scale", "worker=1", "-a", "web"}, 1, []string{"convox scale: app web has no process worker (in its latest release, R1)\nits processes: web; add one with: convox deploy IMAGE --process worker --app web"}},
		{"unset of an unknown variable", []string{"env", "unset", "NOPE", "-a", "web"}, 1, []string{"convox env unset: app web has no variable NOPE (in its latest release, R1)\nsee its variables with: convox env list --app web"}},
		{"scale with a bad count", []string{"scale", "web=two", "-a", "web"}, 2, []string{`count "two" of web is not a whole number`}},
		{"scale with a negative count", []string{"scale", "web=-1", "-a", "web"}, 2, []string{`count "-1" of web`}},
		{"no app", []string{"ps"}, 2, []string{"no app given: use --app NAME"}},
		{"unknown command", []string{"deploi"}, 2, []string{`unknown command "deploi"`}},
		{"group without subcommand", []string{"env"}, 2, []string{"convox env: needs a subcommand: list, set, unset\n"}},
		{"unknown flag", []string{"deploy", "web:v1", "--fast"}, 2, []string{"convox deploy: unknown flag --fast\n"}},
		{"flag without its value", []string{"deploy", "web:v1", "--strategy"}, 2, []string{"convox deploy: --strategy needs a value\n"}},
		{"malformed flag value", []string{"apps", "list", "--wait", "soon"}, 2, []string{`convox apps list: invalid value "soon" for --wait: parse error`}},
		{"bad strategy", []string{"deploy", "web:v1", "-a", "web", "--strategy", "fast"}, 2, []string{`unknown strategy "fast"`}},
		{"bad canary", []string{"deploy", "web:v1", "-a", "web", "--strategy", "canary:50,10"}, 2, []string{"ascending whole numbers"}},
		{"env set without value", []string{"env", "set", "FOO", "-a", "web"}, 2, []string{`"FOO" is not KEY=VALUE`}},
		{"bad variable name", []string{"env", "set", "1FOO=x", "-a", "web"}, 2, []string{"convox env set: app web: invalid argument: ", "1FOO"}},
		{"bad variable name with --debug", []string{"env", "set", "1FOO=x", "-a", "web", "--debug"}, 2, []string{"convox env set: deploy of web failed at prepare: invalid argument: ", "1FOO", "nothing changed"}},
		{"invalid app name", []string{"apps", "create", "Bad_Name"}, 2, []string{`convox apps create: app Bad_Name: invalid argument: app name "Bad_Name"`}},
		{"app name with a path", []string{"apps", "create", "../x"}, 2, []string{`convox apps create: app "../x": invalid argument: `}},
		{"existing app", []string{"apps", "create", "web"}, 1, []string{"already exists"}},
		{"missing release", []string{"releases", "info", "R9", "-a", "web"}, 1, []string{"R9", "list the releases with: convox releases list --app web"}},
		{"nothing to cancel", []string{"cancel", "-a", "web"}, 1, []string{"convox cancel: app web: not found: no deploy of web is in progress\nnothing to cancel"}},
		{"run without --", []string{"run", "web", "server", "-a", "web"}, 2, []string{"put the command after --"}},
		{"unknown process", []string{"run", "worker", "-a", "web"}, 1, []string{`no process "worker"`, "the processes of R1: web"}},
		{"negative wait", []string{"apps", "list", "--wait", "-1s"}, 2, []string{"--wait must not be negative"}},
		{"delete without a terminal", []string{"apps", "delete", "web"}, 2, []string{"convox apps delete: asks for confirmation, and standard input is not a terminal\nadd --yes to apps delete without asking"}},
		{"unknown rack", []string{"apps", "list", "--rack", "gcp"}, 2, []string{`unknown rack "gcp"`}},
		{"delete without name", []string{"apps", "delete", "-a", "web"}, 2, []string{"convox apps delete: needs exactly one app name\n"}},
	})

	// --json failures write an error document to stdout.
	r := e.run("deploy", "web:v9", "-a", "web", "--json")
	var doc errorDoc
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil || r.code != 1 {
		t.Fatalf("deploy --json of a missing image: exit %d, %v\n%s", r.code, err, r.stdout)
	}
	if doc.Error.Code != "not_found" || !strings.Contains(doc.Error.Hint, "convox build") {
		t.Errorf("error document = %+v", doc)
	}
	r = e.run("scale", "web", "-a", "web", "--json")
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil || r.code != 2 || doc.Error.Code != "usage" {
		t.Errorf("scale web --json: exit %d, %v, %+v", r.code, err, doc)
	}

	// An image of another app's repository deploys, with a warning.
	e.ok("apps", "create", "other")
	r = e.ok("deploy", "web:v1", "-a", "other")
	must(t, "deploy of another app's image", r.stderr, "warning: web:v1 is an image of web's repository, deployed into other\n")
	if r = e.ok("deploy", "web:v1", "-a", "web"); strings.Contains(r.stderr, "warning") {
		t.Errorf("deploy of the app's own image warns:\n%s", r.stderr)
	}
	// --yes deletes without asking.
	r = e.ok("apps", "delete", "other", "--yes")
	must(t, "apps delete --yes", r.stdout, "deleted app other")
}

// TestHelp checks that every command has help, on stdout with exit 0.
func TestHelp(t *testing.T) {
	e := newCLIEnv(t)
	r := e.ok("--help")
	must(t, "convox --help", r.stdout, "Usage: convox", "Exit codes:")
	for _, c := range commands() {
		args := append(strings.Fields(c.name), "--help")
		r := e.ok(args...)
		must(t, c.name+" --help", r.stdout, "Usage: convox "+c.name, c.summary, "\n  --app NAME ", "\n  -a NAME ", "\n  --json ")
		for _, line := range strings.Split(r.stdout, "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), "-") && !strings.HasPrefix(strings.TrimSpace(line), "--") && !strings.HasPrefix(strings.TrimSpace(line), "-a ") && !strings.HasPrefix(strings.TrimSpace(line), "-f ") {
				t.Errorf("%s --help shows a flag with one dash: %q", c.name, line)
			}
		}
		h := e.ok(append([]string{"help"}, strings.Fields(c.name)...)...)
		if diff := cmp.Diff(r.stdout, h.stdout); diff != "" {
			t.Errorf("convox help %s and convox %s --help differ (-help +--help):\n%s", c.name, c.name, diff)
		}
	}
	for _, group := range groups {
		for _, args := range [][]string{{group, "--help"}, {"help", group}} {
			r := e.ok(args...)
			must(t, strings.Join(args, " "), r.stdout, "Usage: convox "+group+" SUBCOMMAND")
			for _, sub := range subcommands(group) {
				must(t, strings.Join(args, " "), r.stdout, group+" "+sub)
			}
		}
	}
	r = e.ok("help", "aws")
	must(t, "help aws", r.stdout, "CONVOX_AWS_SUBNETS", "AWS_PROFILE", "CONVOX_AWS_MODE             direct or stack (default direct)",
		"CONVOX_AWS_VPC", "CONVOX_AWS_HTTP_LISTENER", "CONVOX_AWS_HTTPS_LISTENER", "CONVOX_AWS_REGISTRY_ENDPOINT")
	r = e.ok("help")
	must(t, "help", r.stdout, "\n  drift [APP]  ", "show the app's resources changed outside convox (stack mode)", "convox help aws")
	if _, err := os.Stat(filepath.Join(e.dir, ".convox")); !os.IsNotExist(err) {
		t.Errorf("help opened the rack: %v", err)
	}
}
