package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/convox-go/convox"
	"github.com/convox-go/convox/providers/local"
)

// A local rack's directory is used by one program at a time, and its apps'
// processes run only while a program has it open. The process holding the
// rack (any convox command, or "convox serve") listens on a Unix socket in
// the directory; other convox commands connect to it and run inside that
// process, with their arguments, environment and working directory sent
// over, and their output and exit code sent back.

// socketName is the holder's socket, inside the rack directory.
const socketName = "cli.sock"

// maxSocketPath is the longest Unix socket path every platform accepts.
const maxSocketPath = 100

// openTimeout bounds the wait for a rack another program is closing.
const openTimeout = 30 * time.Second

// shutdownGrace is how long a holder finishing its own command lets the
// commands forwarded to it finish before stopping them.
const shutdownGrace = 5 * time.Second

// forwardedEnv are the environment variables a forwarded command sees.
var forwardedEnv = []string{"CONVOX_APP", "CONVOX_RACK", "CONVOX_RACK_DIR"}

// errHeldElsewhere reports that another convox process holds the rack and
// accepts commands: the command is to be forwarded to it.
var errHeldElsewhere = errors.New("the rack is held by another convox process")

// accepts reports whether a holder accepts connections on sock.
func accepts(sock string) bool {
	if len(sock) > maxSocketPath {
		return false
	}
	conn, err := net.DialTimeout("unix", sock, time.Second)
	if err != nil {
		return false
	}
	conn.Close()
	return true
}

// holder is a local rack this process has open, serving the commands other
// convox processes forward to it.
type holder struct {
	rack *local.Rack
	sock string
	ln   net.Listener
	// ctx bounds forwarded commands; cancel stops them.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	active map[*frameWriter]bool
	// log, when set, receives one line per forwarded command (serve).
	log io.Writer
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

// openHolder opens the local rack in dir and starts serving forwarded
// commands. A rack another program has open is waited for: up to
// openTimeout, or until ctx ends when wait is set. Waiting is reported on
// status.
func openHolder(ctx context.Context, dir string, status io.Writer, wait bool) (*holder, error) {
	start := time.Now()
	announced := false
	var rack *local.Rack
	for {
		r, err := local.Open(dir, &local.Options{StopGrace: 5 * time.Second})
		if err == nil {
			rack = r
			break
		}
		if !errors.Is(err, convox.ErrUnavailable) || !strings.Contains(err.Error(), "in use by another program") {
			return nil, withHint(fmt.Errorf("open the local rack: %w", err), "check --rack-dir (or CONVOX_RACK_DIR)")
		}
		if !wait && accepts(filepath.Join(dir, socketName)) {
			return nil, errHeldElsewhere
		}
		if !wait && time.Since(start) > openTimeout {
			return nil, withHint(err, "another program holds the rack and does not accept commands; stop it or wait for it to finish")
		}
		if !announced && time.Since(start) > time.Second {
			fmt.Fprintf(status, "waiting for the rack at %s, held by another program...\n", dir)
			announced = true
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return hold(ctx, rack), nil
}

// hold serves the commands other convox processes forward to the open
// rack, when its socket can be made.
func hold(ctx context.Context, rack *local.Rack) *holder {
	h := &holder{rack: rack, active: map[*frameWriter]bool{}}
	h.ctx, h.cancel = context.WithCancel(context.WithoutCancel(ctx))
	h.sock = filepath.Join(rack.Dir(), socketName)
	if len(h.sock) <= maxSocketPath {
		// The rack's lock is ours: a socket file left here is stale.
		os.Remove(h.sock)
		if ln, err := net.Listen("unix", h.sock); err == nil {
			h.ln = ln
			h.wg.Add(1)
			go h.accept()
		}
	}
	return h
}

// providers returns the rack's providers.
func (h *holder) providers() convox.Rack {
	return convox.Rack{
		Registry: h.rack.Registry(), Scheduler: h.rack.Scheduler(), Balancer: h.rack.Balancer(),
		Logs: h.rack.Logs(), Store: h.rack.Store(),
	}
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

// serve runs one forwarded command. The command is stopped (its context
// canceled) when the caller closes its side of the connection.
func (h *holder) serve(conn net.Conn) {
	defer conn.Close()
	dec := json.NewDecoder(conn)
	var req request
	if err := dec.Decode(&req); err != nil {
		return
	}
	ctx, cancel := context.WithCancel(h.ctx)
	defer cancel()
	go func() {
		io.Copy(io.Discard, io.MultiReader(dec.Buffered(), conn))
		cancel()
	}()
	fw := &frameWriter{w: conn}
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
	code := execute(ctx, req.Args, std, h)
	fw.exit(code)
	h.mu.Lock()
	delete(h.active, fw)
	log := h.log
	h.mu.Unlock()
	if log != nil {
		fmt.Fprintf(log, "ran: convox %s (exit %d)\n", strings.Join(req.Args, " "), code)
	}
}

// setLog makes the holder report each forwarded command on w.
func (h *holder) setLog(w io.Writer) {
	h.mu.Lock()
	h.log = w
	h.mu.Unlock()
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

// forward runs the command line in the process holding the local rack, if
// one accepts commands; ok is false when none does (or it closed before
// running the command), and the command then runs here. Canceling ctx asks
// the holder to stop the command; its output until then is still shown.
func forward(ctx context.Context, g *globals, args []string, std stdio) (code int, ok bool) {
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
			return report(std, g, fmt.Errorf("read standard input: %w", err)), true
		}
	}
	if err := json.NewEncoder(conn).Encode(req); err != nil {
		return 0, false
	}
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
		p := make([]byte, binary.BigEndian.Uint32(hdr[1:]))
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
