package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/convox-go/convox/providers/local"
)

// TestSocketIsTheOwners runs serve with umask 0 and connects to its socket
// as another user: the socket and the files serve writes are the owner's
// alone whatever the umask, and a connection from another user, even with
// the directory and socket opened up, is refused by the peer check before
// anything runs.
func TestSocketIsTheOwners(t *testing.T) {
	if !socketSupported {
		t.Skip("the holder's socket needs SO_PEERCRED (Linux)")
	}
	if os.Geteuid() != 0 {
		t.Skip("running a client as another user (setpriv --reuid) needs root")
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("setpriv is not installed")
	}
	// A directory the other user can traverse, holding a copy of the CLI
	// it can run.
	base, err := os.MkdirTemp("", "convox-peer-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	if err := os.Chmod(base, 0o711); err != nil {
		t.Fatal(err)
	}
	bin, err := os.ReadFile(buildCLI(t))
	if err != nil {
		t.Fatal(err)
	}
	cli := filepath.Join(base, "convox")
	if err := os.WriteFile(cli, bin, 0o755); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(base, "rack")

	old := syscall.Umask(0)
	serve := exec.Command(cli, "serve", "--rack-dir", dir)
	serve.Env = environ()
	stdout, err := serve.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var serveErr syncBuffer
	serve.Stderr = &serveErr
	err = serve.Start()
	syscall.Umask(old)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		serve.Process.Signal(syscall.SIGINT)
		serve.Wait()
	})
	lines := bufio.NewScanner(stdout)
	if !lines.Scan() || !strings.HasPrefix(lines.Text(), "convox serve: serving") {
		t.Fatalf("serve did not start: %q %s", lines.Text(), serveErr.String())
	}
	go io.Copy(io.Discard, stdout)

	modes := map[string]os.FileMode{}
	for _, name := range []string{".", socketName, holderFile, serveLogName} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		modes[name] = fi.Mode().Perm()
	}
	want := map[string]os.FileMode{".": 0o700, socketName: 0o600, holderFile: 0o600, serveLogName: 0o600}
	if diff := cmp.Diff(want, modes); diff != "" {
		t.Errorf("modes under umask 0 (-want +got):\n%s", diff)
	}

	asNobody := func(args ...string) result {
		cmd := exec.Command(setpriv, append([]string{"--reuid=65534", "--regid=65534", "--clear-groups", cli}, args...)...)
		cmd.Dir = base
		cmd.Env = environ()
		var out, errOut strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errOut
		cmd.Run()
		return result{code: cmd.ProcessState.ExitCode(), stdout: out.String(), stderr: errOut.String()}
	}
	for _, tc := range []struct {
		name string
		// open makes the directory and socket reachable by everyone, so
		// that only the peer check stands in the way.
		open       bool
		wantStderr string
	}{
		{name: "the directory keeps other users out", open: false, wantStderr: "permission denied"},
		{name: "the peer check refuses another user", open: true,
			wantStderr: "convox: refused: the program holding the rack runs as uid 0 and accepts commands from that user only, not uid 65534\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.open {
				if err := os.Chmod(dir, 0o711); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(filepath.Join(dir, socketName), 0o666); err != nil {
					t.Fatal(err)
				}
			}
			r := asNobody("apps", "create", "intruder", "--rack-dir", dir, "--wait", "0")
			if r.code != exitFailed || r.stdout != "" || !strings.Contains(r.stderr, tc.wantStderr) {
				t.Errorf("apps create as nobody = %v\nwant exit 1 and stderr containing %q", r, tc.wantStderr)
			}
		})
	}
	must(t, "serve's stderr", serveErr.String(), "convox serve: refused a connection from uid 65534\n")

	owner := &cliEnv{t: t, bin: cli, dir: base}
	r := owner.ok("apps", "list", "--rack-dir", dir, "--json")
	if strings.Contains(r.stdout, "intruder") {
		t.Errorf("another user's command ran: %s", r.stdout)
	}
	log, err := os.ReadFile(filepath.Join(dir, serveLogName))
	if err != nil {
		t.Fatal(err)
	}
	must(t, "serve.log", string(log), "refused a connection from uid 65534", "ran: convox apps list (exit 0")
}

// TestCorruptStore checks that a damaged store is a failure (exit 1, not
// the usage code 2) whose message names the file.
func TestCorruptStore(t *testing.T) {
	e := newCLIEnv(t)
	e.ok("apps", "create", "web")
	store := filepath.Join(e.dir, ".convox", "store.db")
	if err := os.WriteFile(store, []byte(strings.Repeat("not a database\n", 1000)), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"apps", "list"}, {"serve"}} {
		r := e.run(args...)
		if r.code != exitFailed || !strings.Contains(r.stderr, store) {
			t.Errorf("convox %s on a corrupt store = %v\nwant exit 1 and a message naming %s", strings.Join(args, " "), r, store)
		}
	}
}

// TestWaitForAHeldRack holds the rack in this process, without accepting
// commands, and checks how a command waits: it says who holds the rack
// and for how long it waits, fails with a hint once the wait is over (at
// once with --wait 0), and an interrupt ends the wait with a clear message.
func TestWaitForAHeldRack(t *testing.T) {
	e := newCLIEnv(t)
	dir := filepath.Join(e.dir, ".convox")
	rack, err := local.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer rack.Close()
	held := fmt.Sprintf("the rack at %s is held by pid %d (", dir, os.Getpid())
	for _, tc := range []struct {
		name       string
		args       []string
		wantStderr []string
	}{
		{"--wait 0 fails at once", []string{"apps", "list", "--wait", "0"},
			[]string{"convox apps list: " + held, ") since ", " and does not accept commands\nstop it or let it finish, then run the command again\n"}},
		{"a wait ends with a hint", []string{"apps", "list", "--wait", "1s"},
			[]string{fmt.Sprintf("waiting up to 1s for the rack at %s, held by pid %d (", dir, os.Getpid()), "(--wait changes how long; Ctrl-C stops)\n",
				"convox apps list: " + held, " and does not accept commands (waited 1s)\n", "--wait 1m0s waits longer\n"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.run(tc.args...)
			if r.code != exitFailed || r.stdout != "" {
				t.Errorf("exit %d (want 1), stdout %q", r.code, r.stdout)
			}
			must(t, "stderr", r.stderr, tc.wantStderr...)
		})
	}

	t.Run("an interrupt ends the wait", func(t *testing.T) {
		cmd := e.command("apps", "list")
		stderr, err := cmd.StderrPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := bufio.NewScanner(stderr)
		var got []string
		for lines.Scan() {
			got = append(got, lines.Text())
			if strings.HasPrefix(lines.Text(), "waiting up to 30s for the rack") {
				cmd.Process.Signal(syscall.SIGINT)
			}
		}
		cmd.Wait()
		all := strings.Join(got, "\n")
		if cmd.ProcessState.ExitCode() != exitFailed || strings.Contains(all, "context canceled") {
			t.Errorf("interrupted wait: exit %d (want 1)\n%s", cmd.ProcessState.ExitCode(), all)
		}
		must(t, "stderr", all, "convox apps list: interrupted while waiting for the rack at "+dir+fmt.Sprintf(", held by pid %d (", os.Getpid()), "; nothing was done")
	})

	t.Run("a second serve says the rack is served", func(t *testing.T) {
		h := hold(context.Background(), rack, "serve")
		defer func() {
			h.ln.Close()
			os.Remove(h.sock)
		}()
		r := e.run("serve")
		if r.code != exitFailed {
			t.Errorf("second serve: %v", r)
		}
		must(t, "stderr", r.stderr, fmt.Sprintf("convox serve: the rack at %s is already served by pid %d (convox serve) since ", dir, os.Getpid()))
	})
}

// TestCommandName checks that what serve logs of a command line is the
// command's name, never an argument or a flag's value.
func TestCommandName(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"env", "set", "--secret", "PW=hunter2"}, "env set"},
		{[]string{"--app", "web", "env", "set", "PW=hunter2"}, "env set"},
		{[]string{"-a", "web", "--json", "deploy", "web:v2"}, "deploy"},
		{[]string{"--rack-dir=/x", "run", "web", "--", "server", "env", "TOKEN"}, "run"},
		{[]string{"hunter2"}, "?"},
		{[]string{"--app"}, "?"},
		{nil, "?"},
	} {
		if got := commandName(tc.args); got != tc.want {
			t.Errorf("commandName(%q) = %q, want %q", tc.args, got, tc.want)
		}
	}
}
