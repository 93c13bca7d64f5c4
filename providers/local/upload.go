package local

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/convox-go/convox/providers"
)

// DefaultRegistryMaxBlobBytes is the default of Options.RegistryMaxBlobBytes:
// 10 GiB per blob, above any layer a deployable image should have.
const DefaultRegistryMaxBlobBytes = 10 << 30

const (
	// uploadDirName is the registry's spool directory for blob uploads.
	// Repository directories never start with a dot.
	uploadDirName = ".uploads"
	// defaultUploadIdle is how long an upload may go without a request
	// writing to it before it is removed with its file.
	defaultUploadIdle = 15 * time.Minute
	// maxUploads bounds the uploads in progress at once.
	maxUploads = 256
)

var (
	errBlobTooLarge   = errors.New("blob too large")
	errUploadUnknown  = errors.New("blob upload unknown")
	errUploadBusy     = errors.New("another request is writing to this upload")
	errTooManyUploads = errors.New("too many blob uploads in progress")
)

// uploads are the blob uploads in progress. Each spools to its own file in
// dir and has its own lock, held only while a request writes to it; the
// uploads' map has a lock of its own that no I/O happens under. An upload
// no request has written to for idle is removed with its file.
type uploads struct {
	dir  string
	max  int64 // bytes per blob
	idle time.Duration

	mu sync.Mutex
	m  map[string]*upload
}

// upload is one chunked upload session.
type upload struct {
	id, repo, path string

	mu      sync.Mutex // held by the request writing to the upload
	size    int64      // guarded by mu
	sum     hash.Hash  // sha256 of the bytes so far; guarded by mu
	last    time.Time  // last request's end; guarded by mu
	removed bool       // guarded by mu
	timer   *time.Timer
}

// newUploads makes dir the spool directory, removing what an earlier run
// left in it: an upload does not survive the process that received it.
func newUploads(dir string, max int64) (*uploads, error) {
	if err := os.RemoveAll(dir); err != nil {
		return nil, fsError("clear the registry's uploads", err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, fsError("create the registry's uploads", err)
	}
	return &uploads{dir: dir, max: max, idle: defaultUploadIdle, m: map[string]*upload{}}, nil
}

// tooLarge is the error of a blob over the size limit.
func (us *uploads) tooLarge() error {
	return fmt.Errorf("%w: a blob may have at most %d bytes (Options.RegistryMaxBlobBytes): %w", errBlobTooLarge, us.max, providers.ErrInvalid)
}

// start begins an upload into repo.
func (us *uploads) start(repo string) (*upload, error) {
	us.mu.Lock()
	defer us.mu.Unlock()
	if len(us.m) >= maxUploads {
		return nil, errTooManyUploads
	}
	id := randomHex(16)
	path := filepath.Join(us.dir, id)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, fsError("start blob upload", err)
	}
	f.Close()
	u := &upload{id: id, repo: repo, path: path, sum: sha256.New(), last: time.Now()}
	// Armed only once u.timer is set: the callback reads it.
	u.timer = time.AfterFunc(time.Duration(1<<63-1), func() { us.expire(u, time.Now()) })
	u.timer.Reset(us.idle)
	us.m[id] = u
	return u, nil
}

// acquire returns the upload id of repo, locked for the caller's request;
// release or remove unlocks it. An upload another request is writing to
// returns errUploadBusy: a slow writer holds its own upload only.
func (us *uploads) acquire(repo, id string) (*upload, error) {
	us.mu.Lock()
	u := us.m[id]
	us.mu.Unlock()
	if u == nil || u.repo != repo {
		return nil, errUploadUnknown
	}
	if !u.mu.TryLock() {
		return nil, errUploadBusy
	}
	if u.removed {
		u.mu.Unlock()
		return nil, errUploadUnknown
	}
	u.timer.Stop()
	return u, nil
}

// release ends a request on u and restarts its idle timer.
func (us *uploads) release(u *upload) {
	u.last = time.Now()
	u.timer.Reset(us.idle)
	u.mu.Unlock()
}

// remove deletes u and its file (unless already moved into a repository)
// and unlocks it.
func (us *uploads) remove(u *upload) {
	u.removed = true
	u.timer.Stop()
	us.mu.Lock()
	delete(us.m, u.id)
	us.mu.Unlock()
	os.Remove(u.path)
	u.mu.Unlock()
}

// expire removes u if no request has written to it since now minus idle;
// an upload a request is writing to is left to that request.
func (us *uploads) expire(u *upload, now time.Time) {
	if !u.mu.TryLock() {
		return // release restarts the timer
	}
	if u.removed {
		u.mu.Unlock()
		return
	}
	if left := us.idle - now.Sub(u.last); left > 0 {
		u.timer.Reset(left)
		u.mu.Unlock()
		return
	}
	us.remove(u)
}

// expireIdle removes every upload idle at now.
func (us *uploads) expireIdle(now time.Time) {
	us.mu.Lock()
	all := make([]*upload, 0, len(us.m))
	for _, u := range us.m {
		all = append(all, u)
	}
	us.mu.Unlock()
	for _, u := range all {
		us.expire(u, now)
	}
}

// closeAll removes every upload that no request is writing to.
func (us *uploads) closeAll() {
	us.expireIdle(time.Now().Add(us.idle))
}

// count returns the number of uploads in progress.
func (us *uploads) count() int {
	us.mu.Lock()
	defer us.mu.Unlock()
	return len(us.m)
}

// write appends body to u, which the caller holds. Over the size limit it
// returns errBlobTooLarge; the caller removes an upload whose write failed.
func (us *uploads) write(u *upload, body io.Reader) error {
	f, err := os.OpenFile(u.path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fsError("write blob upload", err)
	}
	n, err := io.Copy(io.MultiWriter(f, u.sum), io.LimitReader(body, us.max-u.size+1))
	u.size += n
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if u.size > us.max {
		return us.tooLarge()
	}
	return nil
}

// digest returns the digest of what u holds.
func (u *upload) digest() v1.Hash {
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(u.sum.Sum(nil))}
}

// spool writes rd to a new file in the spool directory, up to the size
// limit, and returns the file's path and the content's digest. The caller
// removes the file.
func (us *uploads) spool(rd io.Reader) (string, v1.Hash, error) {
	f, err := os.CreateTemp(us.dir, "spool-*")
	if err != nil {
		return "", v1.Hash{}, fsError("write blob", err)
	}
	sum := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, sum), io.LimitReader(rd, us.max+1))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && n > us.max {
		err = us.tooLarge()
	}
	if err != nil {
		os.Remove(f.Name())
		return "", v1.Hash{}, err
	}
	return f.Name(), v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum.Sum(nil))}, nil
}
