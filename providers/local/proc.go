package local

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/convox-go/convox/providers"
)

// rootfsCache unpacks images into root file systems, once per digest.
type rootfsCache struct {
	dir   string
	mu    sync.Mutex
	locks map[string]*sync.Mutex
	// bad holds why an image (by digest) cannot be unpacked: a corrupt
	// blob or a layer that breaks the rules. Such an image is refused
	// before a rollout starts (see refused), so that a caller retrying a
	// rollout to it, such as a compensation, stops at once.
	bad map[string]error
}

// refused returns why the image with the digest cannot run, or nil. A
// corrupt image is verified again (its blobs may have been restored); an
// image whose layers break the unpacking rules is refused for good.
func (c *rootfsCache) refused(digest string, load func() (v1.Image, error)) error {
	c.mu.Lock()
	err := c.bad[digest]
	c.mu.Unlock()
	var corrupt *corruptBlobError
	if err == nil || !errors.As(err, &corrupt) {
		return err
	}
	img, lerr := load()
	if errors.Is(lerr, providers.ErrNotFound) {
		// The registry sets a corrupt blob aside: until the image is
		// pushed again, the corruption is still why it cannot run.
		return err
	}
	if lerr != nil {
		return lerr
	}
	if verr := verifyLayers(img); errors.Is(verr, providers.ErrNotFound) {
		return err
	} else if verr != nil {
		return fmt.Errorf("unpack image %s: %w", digest, verr)
	}
	c.mu.Lock()
	delete(c.bad, digest)
	c.mu.Unlock()
	return nil
}

func (c *rootfsCache) lock(key string) func() {
	c.mu.Lock()
	l := c.locks[key]
	if l == nil {
		l = &sync.Mutex{}
		c.locks[key] = l
	}
	c.mu.Unlock()
	l.Lock()
	return l.Unlock
}

// get returns the unpacked root file system of the image with the digest,
// unpacking it first (into a temporary directory renamed into place, so a
// crash never leaves a half-unpacked tree in the cache).
func (c *rootfsCache) get(digest string, load func() (v1.Image, error)) (string, error) {
	h, err := v1.NewHash(digest)
	if err != nil {
		return "", providers.Invalidf("image digest %q: %v", digest, err)
	}
	dir := filepath.Join(c.dir, h.Algorithm+"-"+h.Hex)
	defer c.lock(dir)()
	if _, err := os.Stat(dir); err == nil {
		return dir, nil
	}
	img, err := load()
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(c.dir, 0o700); err != nil {
		return "", fsError("unpack image", err)
	}
	tmp, err := os.MkdirTemp(c.dir, ".unpack-")
	if err != nil {
		return "", fsError("unpack image", err)
	}
	defer os.RemoveAll(tmp)
	if err := unpackImage(tmp, img); err != nil {
		err = fmt.Errorf("unpack image %s: %w", digest, err)
		if errors.Is(err, providers.ErrInvalid) {
			c.mu.Lock()
			c.bad[digest] = err
			c.mu.Unlock()
		}
		return "", err
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return "", fsError("unpack image", err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return "", fsError("unpack image", err)
	}
	return dir, nil
}

// inRoot maps an absolute path inside the image to the host, following
// symbolic links as if root were "/" (an absolute link target stays inside
// the root file system).
func inRoot(root, p string) (string, error) {
	cur := "/"
	rest := strings.Split(path.Clean("/"+p), "/")[1:]
	for hops := 0; len(rest) > 0; {
		part := rest[0]
		rest = rest[1:]
		next := path.Join(cur, part)
		fi, err := os.Lstat(filepath.Join(root, next))
		if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
			cur = next
			continue
		}
		if hops++; hops > 40 {
			return "", fmt.Errorf("too many symbolic links in %s", p)
		}
		link, err := os.Readlink(filepath.Join(root, next))
		if err != nil {
			return "", err
		}
		if !path.IsAbs(link) {
			link = path.Join(cur, link)
		}
		rest = append(strings.Split(path.Clean(link), "/")[1:], rest...)
		cur = "/"
	}
	return filepath.Join(root, filepath.FromSlash(cur)), nil
}

// command is a resolved process command.
type command struct {
	argv []string // argv[0] as the image names it
	path string   // the executable on the host
	dir  string   // the working directory on the host
	env  []string
}

// imageCommand returns the command a process runs: override, else the
// image's entrypoint followed by its cmd. Empty is ErrInvalid.
func imageCommand(img providers.Image, override []string) ([]string, error) {
	if len(override) > 0 {
		return override, nil
	}
	argv := append(slices.Clone(img.Entrypoint), img.Cmd...)
	if len(argv) == 0 {
		return nil, providers.Invalidf("image %s has no entrypoint or command, and the process sets no command", img.Ref())
	}
	return argv, nil
}

// processEnv is the image environment, then the release environment in key
// order, then PORT.
func processEnv(img providers.Image, env map[string]string, port int) []string {
	out := slices.Clone(img.Env)
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		out = append(out, k+"="+env[k])
	}
	if port > 0 {
		out = append(out, fmt.Sprintf("PORT=%d", port))
	}
	return out
}

func envValue(env []string, key string) string {
	v := ""
	for _, kv := range env {
		if k, val, ok := strings.Cut(kv, "="); ok && k == key {
			v = val
		}
	}
	return v
}

// resolveCommand finds argv[0] inside the root file system: a path is taken
// relative to the working directory, a bare name is searched in the
// environment's PATH (as the image sees it).
func resolveCommand(root string, img providers.Image, argv, env []string) (command, error) {
	wd := img.WorkingDir
	if wd == "" {
		wd = "/"
	}
	dir, err := inRoot(root, wd)
	if err != nil {
		return command{}, providers.Invalidf("working directory %s: %v", wd, err)
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return command{}, fsError("working directory "+wd, err)
		}
	}
	var candidates []string
	if strings.Contains(argv[0], "/") {
		p := argv[0]
		if !path.IsAbs(p) {
			p = path.Join(wd, p)
		}
		candidates = []string{p}
	} else {
		search := envValue(env, "PATH")
		if search == "" {
			search = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
		}
		for _, d := range strings.Split(search, ":") {
			if d != "" {
				candidates = append(candidates, path.Join(d, argv[0]))
			}
		}
	}
	for _, c := range candidates {
		host, err := inRoot(root, c)
		if err != nil {
			continue
		}
		if fi, err := os.Stat(host); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return command{argv: argv, path: host, dir: dir, env: env}, nil
		}
	}
	return command{}, providers.Invalidf("command %q is not an executable file in image %s", argv[0], img.Ref())
}

// proc is a running OS process (the leader of its own process group) whose
// output goes to a log stream.
type proc struct {
	pid     int
	started time.Time
	exited  chan struct{}
	state   *os.ProcessState // set before exited is closed
	waitErr error
	pidFile string

	tailMu sync.Mutex
	tail   []string // the last output lines, oldest first
}

// Bounds of the output a proc keeps for its exit reason.
const (
	tailLines    = 5
	tailLineSize = 300
)

// keep remembers an output line among the last few.
func (p *proc) keep(line string) {
	if len(line) > tailLineSize {
		line = line[:tailLineSize] + "..."
	}
	p.tailMu.Lock()
	defer p.tailMu.Unlock()
	p.tail = append(p.tail, line)
	if len(p.tail) > tailLines {
		p.tail = p.tail[len(p.tail)-tailLines:]
	}
}

// lastOutput returns the process's last output lines, joined for an error
// message, or "" when it wrote nothing; complete once exited is closed.
func (p *proc) lastOutput() string {
	p.tailMu.Lock()
	defer p.tailMu.Unlock()
	if len(p.tail) == 0 {
		return ""
	}
	return "last output: " + strings.Join(p.tail, " | ")
}

// pidRecord is the content of a task's pid file.
type pidRecord struct {
	PID   int    `json:"pid"`
	Start uint64 `json:"start,omitempty"` // the kernel's start time of the process, where known
	App   string `json:"app"`
	Task  string `json:"task"`
}

// startProc starts cmd in a new process group, pipes its stdout and stderr
// line by line to out, and records a pid file in pidDir.
func startProc(c command, pidDir, app, task string, out func(line string)) (*proc, error) {
	cmd := exec.Command(c.path, c.argv[1:]...)
	cmd.Args[0] = c.argv[0]
	cmd.Dir = c.dir
	cmd.Env = c.env
	cmd.SysProcAttr = procAttr()
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("start %s: %w: %w", c.argv[0], providers.ErrUnavailable, err)
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		return nil, fmt.Errorf("start %s: %w: %w", c.argv[0], providers.ErrInvalid, err)
	}
	pw.Close()
	p := &proc{pid: cmd.Process.Pid, started: time.Now(), exited: make(chan struct{})}
	p.pidFile = filepath.Join(pidDir, safeName(task)+".json")
	if err := writeJSONAtomic(p.pidFile, pidRecord{PID: p.pid, Start: procStartTime(p.pid), App: app, Task: task}); err != nil {
		syscall.Kill(-p.pid, syscall.SIGKILL)
	}
	pumped := make(chan struct{})
	go func() {
		defer close(pumped)
		br := bufio.NewReaderSize(pr, 64<<10)
		for {
			line, err := br.ReadSlice('\n')
			if len(line) > 0 {
				l := strings.TrimRight(string(line), "\r\n")
				p.keep(l)
				out(l)
			}
			if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
				pr.Close()
				return
			}
		}
	}()
	go func() {
		p.waitErr = cmd.Wait()
		p.state = cmd.ProcessState
		// Children left in the group die with the leader.
		syscall.Kill(-p.pid, syscall.SIGKILL)
		select {
		case <-pumped:
		case <-time.After(2 * time.Second): // a stray descendant holds the pipe
		}
		os.Remove(p.pidFile)
		close(p.exited)
	}()
	return p, nil
}

// alive reports whether the process has not exited.
func (p *proc) alive() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// terminate stops the process group: SIGTERM, then SIGKILL after grace.
func (p *proc) terminate(grace time.Duration) {
	if !p.alive() {
		return
	}
	syscall.Kill(-p.pid, syscall.SIGTERM)
	select {
	case <-p.exited:
		return
	case <-time.After(grace):
	}
	syscall.Kill(-p.pid, syscall.SIGKILL)
	<-p.exited
}

// exit describes how the process ended: its reason ("exit status 2",
// "signal: killed") and its exit code when it exited normally.
func (p *proc) exit() (string, *int) {
	if p.state == nil {
		if p.waitErr != nil {
			return p.waitErr.Error(), nil
		}
		return "unknown", nil
	}
	if code := p.state.ExitCode(); code >= 0 {
		return p.state.String(), &code
	}
	return p.state.String(), nil
}

// killStaleProcs kills the process groups recorded in pidDir by a previous
// run of the rack (one that crashed or was killed) and removes the files.
func killStaleProcs(pidDir string, log *slog.Logger) {
	files, _ := os.ReadDir(pidDir)
	for _, f := range files {
		name := filepath.Join(pidDir, f.Name())
		var rec pidRecord
		err := readJSON(name, &rec)
		if err == nil && rec.PID <= 0 {
			err = fmt.Errorf("pid %d is not a process id", rec.PID)
		}
		if err != nil {
			// Serving on is right: the rest of the rack is fine. The
			// process it named, if any, may still run.
			log.Error("a task pid file is corrupt; the process it recorded, if still running, was not stopped", "file", name, "err", err)
		} else {
			killStale(rec.PID, rec.Start)
		}
		os.Remove(name)
	}
}

// waitGone waits until no process is in the group, at most d.
func waitGone(pgid int, d time.Duration) {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if err := syscall.Kill(-pgid, 0); errors.Is(err, syscall.ESRCH) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// sleepCtx sleeps for d unless ctx ends first; it reports whether it slept.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
