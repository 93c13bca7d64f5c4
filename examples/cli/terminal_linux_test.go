package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// TestREADMEWalkthroughOnATerminal runs the CLI walkthrough of the
// repository's README, as written, in bash on a pseudo-terminal, and
// checks what a person sees there: build and deploy progress drawn in
// place, the endpoint and the app's answers, one quiet line from serve,
// secrets redacted, the exit codes the README promises, and the delete
// confirmation answered on the terminal.
func TestREADMEWalkthroughOnATerminal(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the demo app and runs the whole walkthrough")
	}
	for _, tool := range []string{"bash", "curl", "awk", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("the walkthrough needs %s: %v", tool, err)
		}
	}
	block := readmeWalkthrough(t)

	// The walkthrough runs from a repository root: give it bin/convox
	// (the line that builds it is left out: the test built it) and the
	// demo app's source, as a module of its own.
	root := t.TempDir()
	bin, err := os.ReadFile(buildCLI(t))
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{
		"bin/convox":              bin,
		"examples/cli/app/go.mod": []byte("module example.com/demo\n\ngo 1.26\n"),
	} {
		if err := os.MkdirAll(filepath.Join(root, filepath.Dir(name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, name), data, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	src, err := os.ReadFile(filepath.Join(appDir(t), "main.go"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "examples/cli/app/main.go"), src, 0o644); err != nil {
		t.Fatal(err)
	}
	var script strings.Builder
	var commands []string
	for _, line := range block {
		if strings.HasPrefix(line, "go build ") {
			continue
		}
		cmd := strings.TrimSpace(line)
		if i := strings.Index(cmd, "  #"); i >= 0 {
			cmd = strings.TrimSpace(cmd[:i])
		}
		if cmd == "" {
			continue
		}
		// Each command is announced as a person would see it typed.
		fmt.Fprintf(&script, "printf '%%s\\n' %s\n%s\n", shellQuote(marker+cmd), line)
		commands = append(commands, cmd)
	}
	if len(commands) < 15 {
		t.Fatalf("the README's walkthrough has %d commands; did its format change?\n%s", len(commands), strings.Join(block, "\n"))
	}

	master, slave, err := openPTY()
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	defer master.Close()
	sh := exec.Command("bash", "-c", script.String())
	sh.Dir = root
	sh.Env = environ("TERM=xterm")
	sh.Stdin, sh.Stdout, sh.Stderr = slave, slave, slave
	sh.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := sh.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close()
	t.Cleanup(func() { syscall.Kill(-sh.Process.Pid, syscall.SIGKILL) })

	// Read the terminal until every program on it has exited, answering
	// the delete's question when it is asked.
	var screen bytes.Buffer
	answered := false
	deadline := time.AfterFunc(5*time.Minute, func() { syscall.Kill(-sh.Process.Pid, syscall.SIGKILL) })
	defer deadline.Stop()
	buf := make([]byte, 4096)
	for {
		n, err := master.Read(buf)
		screen.Write(buf[:n])
		if !answered && bytes.Contains(screen.Bytes(), []byte(`Type "hello" to confirm: `)) {
			master.Write([]byte("hello\n"))
			answered = true
		}
		if err != nil { // EIO once the last program closed the terminal
			break
		}
	}
	werr := sh.Wait()
	out := strings.ReplaceAll(screen.String(), "\r\n", "\n")
	t.Logf("the terminal:\n%s", out)
	if werr != nil {
		t.Errorf("the walkthrough ended with %v", werr)
	}

	seen := sections(out, commands)
	for _, tc := range []struct {
		cmd  string
		want []string
	}{
		{"convox build examples/cli/app --tag v1", []string{"building examples/cli/app (go build", "pushing hello:v1 (", "done", "pushed hello:v1 (sha256:"}},
		// On a terminal the wait is one status line redrawn in place.
		{"convox deploy hello:v1", []string{"\r\x1b[KR1 wait [", "R1 is active: hello:v1", "web: http://127.0.0.1:", "serve hello with: convox serve &"}},
		{"curl --retry 10 --retry-connrefused $URL", []string{"hello from v1\n"}},
		{"convox env set GREETING=hi && curl $URL", []string{"R2 is active", "hi from v1\n"}},
		{"convox env list", []string{"GREETING=hi\n", "TOKEN=<redacted>\n"}},
		{"convox run web -- server env TOKEN", []string{"s3cret\n"}},
		{"convox run web -- server exit 3; echo $?", []string{"exiting with 3\n3\n"}},
		{"convox env set CRASH=1; echo $?", []string{"convox env set: deploy of hello R4 failed", "R3 is serving again", "CRASH=1: refusing to start", "\n1\n"}},
		{"convox releases list", []string{"deploy hello:v1", "env set GREETING", "env set TOKEN", "env set CRASH"}},
		{"convox rollback R1 && curl $URL", []string{"rolling back to R1 as R5", "hello from v1\n"}},
		{"convox apps delete hello", []string{`Delete app hello with its processes, routes, logs and every release? Type "hello" to confirm: `, "deleted app hello"}},
	} {
		must(t, tc.cmd, seen[tc.cmd], tc.want...)
	}
	// serve says one line when it starts and one when it stops (wherever
	// the shell puts them: it runs in the background).
	for _, line := range []string{"convox serve: serving 1 app (1 endpoint) from ", "convox serve: stopping\n"} {
		if n := strings.Count(out, line); n != 1 {
			t.Errorf("serve's line %q appears %d times, want once", line, n)
		}
	}
	if strings.Contains(out, "ran: convox") {
		t.Errorf("serve printed the commands it ran")
	}
	// The secret's value shows only where the process printed it: run's
	// output, and the app's logs, which hold that output.
	for cmd, text := range seen {
		if strings.Contains(text, "s3cret") && cmd != "convox run web -- server env TOKEN" && cmd != "convox logs --since 5m" {
			t.Errorf("the output of %q shows the secret value:\n%s", cmd, text)
		}
	}
	if n := strings.Count(seen["convox logs --since 5m"], "s3cret"); n != 1 {
		t.Errorf("the logs show the secret value %d times, want once (the line run printed)", n)
	}
	log, err := os.ReadFile(filepath.Join(root, "bin/rack", serveLogName))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(log), "s3cret") || !strings.Contains(string(log), "ran: convox env set (exit 1, ") {
		t.Errorf("serve.log:\n%s", log)
	}
}

// marker starts the line that announces a command on the terminal.
const marker = "$ "

// readmeWalkthrough returns the lines of the README's CLI walkthrough: the
// first sh block of its "A CLI in an afternoon" section.
func readmeWalkthrough(t *testing.T) []string {
	t.Helper()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "## A CLI in an afternoon")
	if !ok {
		t.Fatal(`README.md has no "A CLI in an afternoon" section`)
	}
	_, block, ok := strings.Cut(section, "```sh\n")
	if !ok {
		t.Fatal("the CLI section of README.md has no sh block")
	}
	block, _, _ = strings.Cut(block, "```")
	return strings.Split(strings.TrimSpace(block), "\n")
}

// sections splits the terminal's output by the announced commands.
func sections(out string, commands []string) map[string]string {
	seen := map[string]string{}
	var cur string
	for line := range strings.Lines(out) {
		if cmd, ok := strings.CutPrefix(line, marker); ok && contains(commands, strings.TrimSuffix(cmd, "\n")) {
			cur = strings.TrimSuffix(cmd, "\n")
			continue
		}
		seen[cur] += line
	}
	return seen
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// shellQuote quotes s for bash.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// openPTY opens a pseudo-terminal pair through /dev/ptmx: the master side
// for the test, the slave side to give the shell as its terminal.
func openPTY() (master, slave *os.File, err error) {
	master, err = os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	var n uint32
	if err := ioctl(master, syscall.TIOCGPTN, unsafe.Pointer(&n)); err != nil {
		master.Close()
		return nil, nil, fmt.Errorf("TIOCGPTN: %w", err)
	}
	var unlock int32
	if err := ioctl(master, syscall.TIOCSPTLCK, unsafe.Pointer(&unlock)); err != nil {
		master.Close()
		return nil, nil, fmt.Errorf("TIOCSPTLCK: %w", err)
	}
	slave, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		master.Close()
		return nil, nil, err
	}
	// A wide terminal, so that status lines are not wrapped.
	ws := struct{ rows, cols, x, y uint16 }{40, 200, 0, 0}
	if err := ioctl(slave, syscall.TIOCSWINSZ, unsafe.Pointer(&ws)); err != nil {
		master.Close()
		slave.Close()
		return nil, nil, fmt.Errorf("TIOCSWINSZ: %w", err)
	}
	return master, slave, nil
}

func ioctl(f *os.File, req uint, arg unsafe.Pointer) error {
	_, _, errno := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), uintptr(req), uintptr(arg))
	if errno != 0 {
		return errors.New(errno.Error())
	}
	return nil
}
