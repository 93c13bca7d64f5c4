// Package helperproc runs a test binary again as a helper process: one
// test function, selected with -test.run, that reads commands on standard
// input and reports lines with a prefix on standard output. Tests that
// must kill a deploying program, or run two of them at once, use it.
//
//	func TestHelper(t *testing.T) {
//		if os.Getenv("HELPER") == "" {
//			t.Skip("helper process; runs only when TestMain starts it")
//		}
//		fmt.Println("helper: ready")
//	}
//
//	p := helperproc.Start(t, "TestHelper", "helper: ", "HELPER=1")
//	defer p.Kill()
//	line, ok, timedOut := p.Next(time.After(time.Minute)) // "ready"
package helperproc

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// Process is a running helper process.
type Process struct {
	cmd    *exec.Cmd
	lines  chan string
	stdin  io.WriteCloser
	stderr strings.Builder // read only after the process was waited for
	waited bool
}

// Start runs the test function named test of the running test binary in a
// new process, with env added to the environment; lines it prints starting
// with prefix are delivered, without the prefix, by Next. A binary built
// with -race is told not to sleep a second as it exits (which it does to
// let other threads report races), so that waiting for helpers is quick.
func Start(t testing.TB, test, prefix string, env ...string) *Process {
	t.Helper()
	p := &Process{lines: make(chan string, 256)}
	p.cmd = exec.Command(os.Args[0], "-test.run=^"+test+"$", "-test.count=1")
	p.cmd.Env = append(os.Environ(), "GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	p.cmd.Env = append(p.cmd.Env, env...)
	p.cmd.Stderr = &p.stderr
	var err error
	if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(p.lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if line, ok := strings.CutPrefix(sc.Text(), prefix); ok {
				p.lines <- line
			}
		}
	}()
	return p
}

// Send writes a command line to the process.
func (p *Process) Send(line string) { io.WriteString(p.stdin, line+"\n") }

// Next returns the process's next line; ok is false once it exited, and
// timedOut is true when timeout fired first.
func (p *Process) Next(timeout <-chan time.Time) (line string, ok, timedOut bool) {
	select {
	case line, ok := <-p.lines:
		return line, ok, false
	case <-timeout:
		return "", true, true
	}
}

// Kill ends the process with SIGKILL (if it still runs) and waits for it.
func (p *Process) Kill() {
	if p.waited {
		return
	}
	p.cmd.Process.Kill()
	p.Wait()
}

// Wait waits for the process to exit, after it printed everything, and
// returns how it exited.
func (p *Process) Wait() error {
	for range p.lines {
	}
	err := p.cmd.Wait()
	p.stdin.Close()
	p.waited = true
	return err
}

// Fatal kills the process and ends the test, showing the process's
// standard error.
func (p *Process) Fatal(t testing.TB, format string, args ...any) {
	t.Helper()
	p.Kill()
	t.Fatalf("%s; the helper process's stderr:\n%s", fmt.Sprintf(format, args...), p.stderr.String())
}

// Lines delivers the process's lines, without the prefix, until it exits;
// Next reads from the same channel.
func (p *Process) Lines() <-chan string { return p.lines }

// Stderr is what the process wrote to standard error; read it only after
// Wait or Kill.
func (p *Process) Stderr() string { return p.stderr.String() }
