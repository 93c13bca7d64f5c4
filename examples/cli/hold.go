package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/convox-go/convox"

	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/local"
)

// A local rack's directory is used by one program at a time, and its apps'
// processes run only while a program has it open. The process holding the
// rack (any convox command, or "convox serve") listens on a Unix socket in
// the directory; other convox commands connect to it and run inside that
// process, with their arguments, environment and working directory sent
// over, and their output and exit code sent back.
//
// The socket is the owner's alone: it is created with mode 0600 (whatever
// the umask) inside the rack directory, and on Linux the holder checks the
// connecting process's user (SO_PEERCRED) and refuses every other user
// before reading a byte of its request. Where the peer's user cannot be
// checked (other systems), no socket is made: commands then wait for the
// rack instead of running inside the holder.

// socketName is the holder's socket, inside the rack directory.
const socketName = "cli.sock"

// holderFile records which convox command holds the rack, for the
// commands that wait for it.
const holderFile = "holder.json"

// serveLogName is the file, in the rack directory, where "convox serve"
// records the commands it ran for others.
const serveLogName = "serve.log"

// maxSocketPath is the longest Unix socket path every platform accepts.
const maxSocketPath = 100

// defaultWait is how long a command waits for a rack another program holds
// without accepting commands (--wait).
const defaultWait = 30 * time.Second

// shutdownGrace is how long a holder finishing its own command lets the
// commands forwarded to it finish before stopping them.
const shutdownGrace = 5 * time.Second

// maxRequest bounds the request a forwarding process sends.
const maxRequest = 2 << 20

// forwardedEnv are the environment variables a forwarded command sees.
var forwardedEnv = []string{"CONVOX_APP", "CONVOX_RACK", "CONVOX_RACK_DIR"}

// errHeldElsewhere reports that another convox process holds the rack and
// accepts commands: the command is to be forwarded to it.
var errHeldElsewhere = errors.New("the rack is held by another convox process")

// rackError is a failure to open or use the local rack itself (a corrupt
// store, a directory that cannot be used, a rack held too long): the
// command failed, whatever the cause's code, so it exits 1.
type rackError struct{ err error }

func (e *rackError) Error() string { return e.err.Error() }
func (e *rackError) Unwrap() error { return e.err }

// accepts reports whether a holder accepts connections on sock.
func accepts(sock string) bool {
	if !socketSupported || len(sock) > maxSocketPath {
		return false
	}
	conn, err := net.DialTimeout("unix", sock, time.Second)
	if err != nil {
		return false
	}
	conn.Close()
	return true
}

// holderInfo is what holder.json records: which convox command holds the
// rack. Only the command's name is recorded, never its arguments.
type holderInfo struct {
	PID     int       `json:"pid"`
	Command string    `json:"command"`
	Since   time.Time `json:"since"`
}

// holder is a local rack this process has open, serving the commands other
// convox processes forward to it.
type holder struct {
	rack *local.Rack
	sock string
	ln   net.Listener
	info holderInfo
	// ctx bounds forwarded commands; cancel stops them.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	active map[*frameWriter]bool
	// log, when set, receives one line per forwarded command and per
	// refused connection (serve); problems, when set, receives the
	// refusals too.
	log, problems io.Writer
}

// request is what a forwarding process sends.
type request struct {
	Args  []string          `json:"args"`
	Env   map[string]string `json:"env"`
	Dir   string            `json:"dir"`
	TTY   bool              `json:"tty"`
	Stdin []byte            `json:"stdin,omitempty"`
}

// Frame kinds of the holder's replies.
const (
	frameStdout = 'o'
	frameStderr = 'e'
	frameExit   = 'x'
)

// openHolder opens the local rack in dir for the command cmd and starts
// serving forwarded commands. A rack another program holds is waited for,
// up to wait (0: not at once), saying on status who holds it; a holder
// that accepts commands is errHeldElsewhere unless serve is set. logger
// receives the rack's diagnostics.
func openHolder(ctx context.Context, dir, cmd string, status io.Writer, wait time.Duration, serve bool, logger *slog.Logger) (*holder, error) {
	start := time.Now()
	sock := filepath.Join(dir, socketName)
	announced := false
	for {
		rack, err := local.Open(dir, &local.Options{StopGrace: 5 * time.Second, Logger: logger})
		if err == nil {
			return hold(ctx, rack, cmd), nil
		}
		if !inUse(err) {
			return nil, &rackError{withHint(fmt.Errorf("open the local rack at %s: %w", dir, err), "check --rack-dir (or CONVOX_RACK_DIR); move a damaged file named above aside to start it afresh")}
		}
		who, info := describeHolder(dir, err)
		if accepts(sock) {
			if !serve {
				return nil, errHeldElsewhere
			}
			if info.Command == "convox serve" {
				return nil, &rackError{withHint(fmt.Errorf("the rack at %s is already served by %s", dir, who), "its apps are being served; stop it (Ctrl-C in its terminal) to serve from here")}
			}
			// Another convox command holds the rack for its own
			// duration: serve once it is done.
		}
		waited := time.Since(start)
		if waited >= wait {
			hint := "stop it or let it finish, then run the command again"
			if wait > 0 {
				hint += fmt.Sprintf("; --wait %s waits longer", max(2*wait, time.Minute).Round(time.Second))
			}
			msg := fmt.Sprintf("the rack at %s is held by %s and does not accept commands", dir, who)
			if wait > 0 {
				msg += fmt.Sprintf(" (waited %s)", waited.Round(time.Second))
			}
			return nil, &rackError{withHint(errors.New(msg), "%s", hint)}
		}
		if !announced {
			fmt.Fprintf(status, "waiting up to %s for the rack at %s, held by %s (--wait changes how long; Ctrl-C stops)\n", wait, dir, who)
			announced = true
		}
		select {
		case <-ctx.Done():
			return nil, &rackError{fmt.Errorf("interrupted while waiting for the rack at %s, held by %s; nothing was done", dir, who)}
		case <-time.After(min(200*time.Millisecond, wait-waited)):
		}
	}
}

// inUse reports whether err is local.Open's "another program has the
// directory open".
func inUse(err error) bool {
	return errors.Is(err, providers.ErrUnavailable) && strings.Contains(err.Error(), "in use by another program")
}

var pidInError = regexp.MustCompile(`\(pid (\d+)\)`)

// describeHolder says who holds the rack: "pid 123 (convox serve) since
// 16:04:05" from the holder file of a convox holder, else from what the
// system tells about the pid in local.Open's error. info is the holder
// file's record when it names the holder.
func describeHolder(dir string, openErr error) (string, holderInfo) {
	pid := 0
	if m := pidInError.FindStringSubmatch(openErr.Error()); m != nil {
		pid, _ = strconv.Atoi(m[1])
	}
	var info holderInfo
	if b, err := os.ReadFile(filepath.Join(dir, holderFile)); err == nil && json.Unmarshal(b, &info) == nil && info.PID > 0 {
		// The lock file is empty for an instant while a holder writes its
		// pid: then trust a holder file whose process still runs.
		if _, _, running := processInfo(info.PID); info.PID == pid || (pid == 0 && running) {
			return fmt.Sprintf("pid %d (%s) since %s", info.PID, info.Command, clock(info.Since)), info
		}
	}
	if pid <= 0 {
		return "another program", holderInfo{}
	}
	s := fmt.Sprintf("pid %d", pid)
	if name, since, ok := processInfo(pid); ok {
		s += fmt.Sprintf(" (%s) since %s", name, clock(since))
	}
	return s, holderInfo{}
}

// clock renders t as a time of day, with the date when it is not today.
func clock(t time.Time) string {
	t = t.Local()
	if y, m, d := t.Date(); y == time.Now().Year() && m == time.Now().Month() && d == time.Now().Day() {
		return t.Format("15:04:05")
	}
	return t.Format("2006-01-02 15:04:05")
}

// hold serves the commands other convox processes forward to the open
// rack, when its socket can be made, and records the holder in the rack
// directory.
func hold(ctx context.Context, rack *local.Rack, cmd string) *holder {
	h := &holder{rack: rack, active: map[*frameWriter]bool{}, info: holderInfo{PID: os.Getpid(), Command: "convox " + cmd, Since: time.Now()}}
	h.ctx, h.cancel = context.WithCancel(context.WithoutCancel(ctx))
	if b, err := json.Marshal(h.info); err == nil {
		writePrivate(filepath.Join(rack.Dir(), holderFile), b)
	}
	h.sock = filepath.Join(rack.Dir(), socketName)
	if ln, err := listenPrivate(rack.Dir(), h.sock); err == nil {
		h.ln = ln
		h.wg.Add(1)
		go h.accept()
	}
	return h
}

// writePrivate replaces the file name with data, readable by its owner only.
func writePrivate(name string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+"-")
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(f.Name())
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(f.Name())
		return err
	}
	return os.Rename(f.Name(), name)
}

// listenPrivate listens on a Unix socket at sock with mode 0600 whatever
// the umask: the socket is made in a new directory of mode 0700 inside
// dir, its mode set, and only then moved to sock. A socket file already
// at sock is stale: the rack's lock is ours.
func listenPrivate(dir, sock string) (net.Listener, error) {
	if !socketSupported {
		return nil, errors.ErrUnsupported
	}
	tmp, err := os.MkdirTemp(dir, ".sock-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	p := filepath.Join(tmp, "s")
	if len(p) > maxSocketPath || len(sock) > maxSocketPath {
		return nil, fmt.Errorf("socket path %s is longer than %d bytes", sock, maxSocketPath)
	}
	ln, err := net.Listen("unix", p)
	if err != nil {
		return nil, err
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	if err := os.Chmod(p, 0o600); err != nil {
		ln.Close()
		return nil, err
	}
	os.Remove(sock)
	if err := os.Rename(p, sock); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}

// providers returns the rack's providers.
func (h *holder) providers() convox.Rack {
	return h.rack.ConvoxRack()
}

// close stops accepting commands, lets running forwarded commands finish
// (for at most shutdownGrace, then stops them) and closes the rack, which
// stops the apps' processes.
func (h *holder) close() error {
	if h.ln != nil {
		h.ln.Close()
		os.Remove(h.sock)
	}
	done := make(chan struct{})
	go func() {
		h.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(shutdownGrace):
		h.mu.Lock()
		for fw := range h.active {
			fmt.Fprintf(fw.stream(frameStderr), "convox: the program holding the rack (pid %d) is exiting; stopping this command\n", os.Getpid())
		}
		h.mu.Unlock()
		h.cancel()
		<-done
	}
	h.cancel()
	os.Remove(filepath.Join(h.rack.Dir(), holderFile))
	return h.rack.Close()
}

// accept serves connections until the listener closes.
func (h *holder) accept() {
	defer h.wg.Done()
	for {
		conn, err := h.ln.Accept()
		if err != nil {
			return
		}
		h.wg.Add(1)
		go func() {
			defer h.wg.Done()
			h.serve(conn)
		}()
	}
}

// serve runs one forwarded command, after checking that the connecting
// process runs as this process's user. The command is stopped (its context
// canceled) when the caller closes its side of the connection.
func (h *holder) serve(conn net.Conn) {
	defer conn.Close()
	fw := &frameWriter{w: conn}
	if uid, err := peerUID(conn); err != nil || uid != os.Geteuid() {
		who := "an unknown user"
		if err == nil {
			who = fmt.Sprintf("uid %d", uid)
		}
		fmt.Fprintf(fw.stream(frameStderr), "convox: refused: the program holding the rack runs as uid %d and accepts commands from that user only, not %s\n", os.Geteuid(), who)
		fw.exit(exitFailed)
		h.record(fmt.Sprintf("refused a connection from %s", who), true)
		return
	}
	dec := json.NewDecoder(io.LimitReader(conn, maxRequest))
	var req request
	if err := dec.Decode(&req); err != nil {
		// Answer, so that the caller does not take the silence for a
		// holder gone and try again.
		fmt.Fprintf(fw.stream(frameStderr), "convox: the program holding the rack could not read the command (at most %d bytes): %v\n", maxRequest, err)
		fw.exit(exitUsage)
		return
	}
	ctx, cancel := context.WithCancel(h.ctx)
	defer cancel()
	go func() {
		io.Copy(io.Discard, io.MultiReader(dec.Buffered(), conn))
		cancel()
	}()
	h.mu.Lock()
	h.active[fw] = true
	h.mu.Unlock()
	std := stdio{
		Stdin:  bytes.NewReader(req.Stdin),
		Stdout: fw.stream(frameStdout),
		Stderr: fw.stream(frameStderr),
		Getenv: func(k string) string { return req.Env[k] },
		Dir:    req.Dir,
		TTY:    req.TTY,
	}
	start := time.Now()
	code := execute(ctx, req.Args, std, h)
	// Recorded before the caller learns the outcome, so that the log is
	// in the order the commands finished.
	h.record(fmt.Sprintf("ran: convox %s (exit %d, %s)", commandName(req.Args), code, time.Since(start).Round(time.Millisecond)), false)
	fw.exit(code)
	h.mu.Lock()
	delete(h.active, fw)
	h.mu.Unlock()
}

// record writes one line to the holder's log, and a problem also to its
// problems writer.
func (h *holder) record(line string, problem bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.log != nil {
		fmt.Fprintf(h.log, "%s %s\n", time.Now().Format(time.RFC3339), line)
	}
	if problem && h.problems != nil {
		fmt.Fprintf(h.problems, "convox serve: %s\n", line)
	}
}

// setLog makes the holder record each forwarded command on log and report
// refused connections on problems (either may be nil).
func (h *holder) setLog(log, problems io.Writer) {
	h.mu.Lock()
	h.log, h.problems = log, problems
	h.mu.Unlock()
}

// commandName returns the command a command line runs ("env set"), never
// its arguments or flags, which may hold secret values; "?" when the line
// names no command.
func commandName(args []string) string {
	fs := flag.NewFlagSet("convox", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	(&globals{}).register(fs)
	if fs.Parse(args) != nil {
		return "?"
	}
	if c := lookup(fs.Args()); c != nil {
		return c.name
	}
	return "?"
}

// frameWriter writes length-prefixed frames to a connection; safe for
// concurrent use.
type frameWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (f *frameWriter) frame(kind byte, p []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	var hdr [5]byte
	hdr[0] = kind
	binary.BigEndian.PutUint32(hdr[1:], uint32(len(p)))
	if _, err := f.w.Write(hdr[:]); err != nil {
		return err
	}
	_, err := f.w.Write(p)
	return err
}

// stream returns a writer of frames of one kind.
func (f *frameWriter) stream(kind byte) io.Writer {
	return writerFunc(func(p []byte) (int, error) {
		if err := f.frame(kind, p); err != nil {
			return 0, err
		}
		return len(p), nil
	})
}

// exit sends the exit code.
func (f *frameWriter) exit(code int) {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], uint32(int32(code)))
	f.frame(frameExit, b[:])
}

type writerFunc func([]byte) (int, error)

func (w writerFunc) Write(p []byte) (int, error) { return w(p) }

// maxFrame bounds one frame of the holder's reply.
const maxFrame = 16 << 20

// forward runs the command line in the process holding the local rack, if
// one accepts commands; ok is false when none does (or it closed before
// running the command), and the command then runs here. Canceling ctx asks
// the holder to stop the command; its output until then is still shown.
func forward(ctx context.Context, g *globals, args []string, std stdio) (code int, ok bool) {
	if !socketSupported {
		return 0, false
	}
	dir := g.rackDir
	if !filepath.IsAbs(dir) && std.Dir != "" {
		dir = filepath.Join(std.Dir, dir)
	}
	sock := filepath.Join(dir, socketName)
	if len(sock) > maxSocketPath {
		return 0, false
	}
	conn, err := net.DialTimeout("unix", sock, time.Second)
	if err != nil {
		return 0, false
	}
	defer conn.Close()
	req := request{Args: args, Env: map[string]string{}, Dir: std.Dir, TTY: std.TTY}
	for _, k := range forwardedEnv {
		if v := std.Getenv(k); v != "" {
			req.Env[k] = v
		}
	}
	if readsStdin(args) && std.Stdin != nil {
		if req.Stdin, err = io.ReadAll(io.LimitReader(std.Stdin, 1<<20)); err != nil {
			return report(std, g, "", fmt.Errorf("read standard input: %w", err)), true
		}
	}
	// A failed write is not the end: a holder that refuses the caller
	// answers and closes without reading the request, so the write can
	// fail after its answer arrived. Its reply, if any, is read below;
	// without one the command runs here.
	_ = json.NewEncoder(conn).Encode(req)
	finished := make(chan struct{})
	defer close(finished)
	go func() {
		select {
		case <-ctx.Done():
			if uc, ok := conn.(*net.UnixConn); ok {
				uc.CloseWrite()
			}
		case <-finished:
		}
	}()
	r := bufio.NewReader(conn)
	received := false
	for {
		var hdr [5]byte
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			if !received {
				return 0, false
			}
			fmt.Fprintln(std.Stderr, "convox: lost the connection to the program holding the rack")
			return exitFailed, true
		}
		received = true
		n := binary.BigEndian.Uint32(hdr[1:])
		if n > maxFrame {
			fmt.Fprintln(std.Stderr, "convox: the program holding the rack sent a malformed reply")
			return exitFailed, true
		}
		p := make([]byte, n)
		if _, err := io.ReadFull(r, p); err != nil {
			fmt.Fprintln(std.Stderr, "convox: lost the connection to the program holding the rack")
			return exitFailed, true
		}
		switch hdr[0] {
		case frameStdout:
			std.Stdout.Write(p)
		case frameStderr:
			std.Stderr.Write(p)
		case frameExit:
			if len(p) == 4 {
				return int(int32(binary.BigEndian.Uint32(p))), true
			}
			return exitFailed, true
		}
	}
}

// readsStdin reports whether a command line reads standard input (a
// variable set to "-").
func readsStdin(args []string) bool {
	for _, a := range args {
		if strings.HasSuffix(a, "=-") {
			return true
		}
	}
	return false
}
