package local

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"hash"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/convox-go/convox/providers/local/localtest"
)

// startUpload starts a chunked upload into repo and returns its location.
func startUpload(t *testing.T, r *Rack, repo string) string {
	t.Helper()
	got := authed(t, r, http.MethodPost, "/v2/"+repo+"/blobs/uploads/", nil, nil)
	if got.status != http.StatusAccepted || got.header.Get("Location") == "" {
		t.Fatalf("POST upload: %d %s", got.status, got.body)
	}
	return got.header.Get("Location")
}

// unsized hides the length of a body, so that it is sent chunked.
func unsized(b []byte) io.Reader { return io.MultiReader(bytes.NewReader(b)) }

func digestString(b []byte) string { return digestOf(b).String() }

// assertNoTrace checks that a failed upload into repo left no repository,
// no upload and no spooled file.
func assertNoTrace(t *testing.T, r *Rack, repo string) {
	t.Helper()
	reg := r.Registry()
	if _, err := os.Stat(reg.repoDir(repo)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("repository %s exists after the failed upload (stat: %v)", repo, err)
	}
	if n := reg.uploads.count(); n != 0 {
		t.Errorf("%d uploads in progress after the failed upload, want 0", n)
	}
	entries, err := os.ReadDir(reg.uploads.dir)
	must(t, err)
	if len(entries) != 0 {
		t.Errorf("the spool directory holds %d files after the failed upload, want none", len(entries))
	}
}

func TestRegistryUploadLimits(t *testing.T) {
	const limit = 1024
	opts := testOptions()
	opts.RegistryMaxBlobBytes = limit
	r, err := Open(t.TempDir(), opts)
	must(t, err)
	t.Cleanup(func() { r.Close() })
	over, fits, part := bytes.Repeat([]byte("o"), limit+1), bytes.Repeat([]byte("f"), limit), bytes.Repeat([]byte("p"), limit/2+1)

	tests := []struct {
		name       string
		upload     func(t *testing.T, repo string) (apiResponse, string) // last response, upload location
		wantStatus int
		wantCode   string
	}{
		{"a monolithic upload of the limit is stored", func(t *testing.T, repo string) (apiResponse, string) {
			return authed(t, r, http.MethodPost, "/v2/"+repo+"/blobs/uploads/?digest="+digestString(fits), bytes.NewReader(fits), nil), ""
		}, http.StatusCreated, ""},
		{"a monolithic upload declaring more than the limit is refused", func(t *testing.T, repo string) (apiResponse, string) {
			return authed(t, r, http.MethodPost, "/v2/"+repo+"/blobs/uploads/?digest="+digestString(over), bytes.NewReader(over), nil), ""
		}, http.StatusRequestEntityTooLarge, "SIZE_INVALID"},
		{"a monolithic upload of unknown length over the limit is refused", func(t *testing.T, repo string) (apiResponse, string) {
			return authed(t, r, http.MethodPost, "/v2/"+repo+"/blobs/uploads/?digest="+digestString(over), unsized(over), nil), ""
		}, http.StatusRequestEntityTooLarge, "SIZE_INVALID"},
		{"a chunk over the limit is refused", func(t *testing.T, repo string) (apiResponse, string) {
			loc := startUpload(t, r, repo)
			return authed(t, r, http.MethodPatch, loc, unsized(over), nil), loc
		}, http.StatusRequestEntityTooLarge, "SIZE_INVALID"},
		{"chunks adding up to more than the limit are refused", func(t *testing.T, repo string) (apiResponse, string) {
			loc := startUpload(t, r, repo)
			if got := authed(t, r, http.MethodPatch, loc, unsized(part), nil); got.status != http.StatusAccepted {
				t.Fatalf("first chunk: %d %s", got.status, got.body)
			}
			return authed(t, r, http.MethodPatch, loc, unsized(part), nil), loc
		}, http.StatusRequestEntityTooLarge, "SIZE_INVALID"},
		{"a last chunk taking the upload over the limit is refused", func(t *testing.T, repo string) (apiResponse, string) {
			loc := startUpload(t, r, repo)
			if got := authed(t, r, http.MethodPatch, loc, bytes.NewReader(part), nil); got.status != http.StatusAccepted {
				t.Fatalf("first chunk: %d %s", got.status, got.body)
			}
			all := append(append([]byte{}, part...), part...)
			return authed(t, r, http.MethodPut, loc+"?digest="+digestString(all), bytes.NewReader(part), nil), loc
		}, http.StatusRequestEntityTooLarge, "SIZE_INVALID"},
		{"a monolithic upload with another digest is refused", func(t *testing.T, repo string) (apiResponse, string) {
			return authed(t, r, http.MethodPost, "/v2/"+repo+"/blobs/uploads/?digest="+digestString(part), bytes.NewReader(fits), nil), ""
		}, http.StatusBadRequest, "DIGEST_INVALID"},
		{"a chunked upload finished with another digest is refused", func(t *testing.T, repo string) (apiResponse, string) {
			loc := startUpload(t, r, repo)
			if got := authed(t, r, http.MethodPatch, loc, bytes.NewReader(part), nil); got.status != http.StatusAccepted {
				t.Fatalf("chunk: %d %s", got.status, got.body)
			}
			return authed(t, r, http.MethodPut, loc+"?digest="+digestString(fits), nil, nil), loc
		}, http.StatusBadRequest, "DIGEST_INVALID"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			repo := "limits" + strconv.Itoa(i)
			got, loc := tt.upload(t, repo)
			if diff := cmp.Diff([]any{tt.wantStatus, tt.wantCode}, []any{got.status, got.code()}); diff != "" {
				t.Fatalf("(-want +got):\n%s\nbody: %s", diff, got.body)
			}
			if tt.wantStatus == http.StatusCreated {
				if !r.Registry().exists(repo) {
					t.Errorf("repository %s missing after a stored upload", repo)
				}
				return
			}
			assertNoTrace(t, r, repo)
			if loc != "" {
				if again := authed(t, r, http.MethodPatch, loc, bytes.NewReader(part), nil); again.status != http.StatusNotFound || again.code() != "BLOB_UPLOAD_UNKNOWN" {
					t.Errorf("PATCH after the failure: %d %s, want 404 BLOB_UPLOAD_UNKNOWN", again.status, again.body)
				}
			}
		})
	}
	t.Run("PushImage refuses a layer over the limit with ErrInvalid", func(t *testing.T) {
		img := mustRandomImageOfSize(t, 4*limit)
		_, err := r.Registry().PushImage(t.Context(), "limits-push", "v1", img)
		if !errors.Is(err, errBlobTooLarge) {
			t.Fatalf("PushImage error = %v, want the size limit", err)
		}
		assertNoTrace(t, r, "limits-push")
	})
}

func TestRegistryUploadExpiry(t *testing.T) {
	r := openTestRack(t, "")
	us := r.Registry().uploads
	loc := startUpload(t, r, "expiry")
	if got := authed(t, r, http.MethodPatch, loc, bytes.NewReader([]byte("chunk")), nil); got.status != http.StatusAccepted {
		t.Fatalf("PATCH: %d %s", got.status, got.body)
	}
	id := filepath.Base(loc)
	spooled := filepath.Join(us.dir, id)
	if _, err := os.Stat(spooled); err != nil {
		t.Fatalf("the upload is not spooled to %s: %v", spooled, err)
	}

	us.expireIdle(time.Now())
	if us.count() != 1 {
		t.Fatalf("an upload written to just now was expired")
	}
	held, err := us.acquire("expiry", id)
	must(t, err)
	us.expireIdle(time.Now().Add(2 * us.idle))
	if us.count() != 1 {
		t.Fatalf("an upload a request is writing to was expired")
	}
	us.release(held)

	us.expireIdle(time.Now().Add(us.idle))
	if us.count() != 0 {
		t.Errorf("an upload idle for %v was not expired", us.idle)
	}
	if _, err := os.Stat(spooled); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the expired upload's file remains (stat: %v)", err)
	}
	if got := authed(t, r, http.MethodPatch, loc, bytes.NewReader([]byte("more")), nil); got.status != http.StatusNotFound {
		t.Errorf("PATCH of the expired upload: %d, want 404", got.status)
	}
	assertNoTrace(t, r, "expiry")

	t.Run("the idle timer removes an abandoned upload", func(t *testing.T) {
		us, err := newUploads(filepath.Join(t.TempDir(), "uploads"), 1<<20)
		must(t, err)
		us.idle = 10 * time.Millisecond
		u, err := us.start("web")
		must(t, err)
		waitFor(t, "the abandoned upload to be removed", func() bool {
			_, err := os.Stat(u.path)
			return us.count() == 0 && errors.Is(err, os.ErrNotExist)
		})
	})
}

// waitFor polls cond until it holds, failing the test after a minute.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// spooledSize returns the size of the upload id's spool file (-1 if none).
func spooledSize(r *Rack, id string) int64 {
	fi, err := os.Stat(filepath.Join(r.Registry().uploads.dir, id))
	if err != nil {
		return -1
	}
	return fi.Size()
}

// TestRegistrySlowUploadHoldsOnlyItself starts a chunk whose body the test
// feeds by hand and, while it is stalled, pushes another image and tries
// the same upload again: the push succeeds, the second request on the
// stalled upload is refused, and the stalled upload finishes afterwards.
func TestRegistrySlowUploadHoldsOnlyItself(t *testing.T) {
	r := openTestRack(t, "")
	loc := startUpload(t, r, "slow")
	id := filepath.Base(loc)
	creds, err := r.Registry().Credentials(t.Context(), "")
	must(t, err)

	pr, pw := io.Pipe()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPatch, "http://"+r.Registry().Host()+loc, pr)
	must(t, err)
	req.SetBasicAuth(creds.Username, creds.Password)
	done := make(chan *http.Response, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Error(err)
		}
		done <- resp
	}()
	_, err = pw.Write([]byte("a"))
	must(t, err)
	waitFor(t, "the first byte to reach the spool file", func() bool { return spooledSize(r, id) == 1 })

	// The stalled chunk holds its own upload, nothing else.
	img := mustRandomImage(t)
	ref, err := name.ParseReference(r.Registry().Host() + "/other:v1")
	must(t, err)
	if err := remote.Write(ref, img, remote.WithContext(t.Context()), localtest.Auth(t, r.Registry())); err != nil {
		t.Fatalf("another client's push while an upload is stalled: %v", err)
	}
	if got := authed(t, r, http.MethodPatch, loc, bytes.NewReader([]byte("b")), nil); got.status != http.StatusConflict {
		t.Errorf("a second request on the stalled upload: %d %s, want 409", got.status, got.body)
	}

	_, err = pw.Write([]byte("bc"))
	must(t, err)
	must(t, pw.Close())
	resp := <-done
	if resp == nil {
		t.FailNow()
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted || resp.Header.Get("Range") != "0-2" {
		t.Fatalf("stalled PATCH finished with %d, Range %q; want 202, 0-2", resp.StatusCode, resp.Header.Get("Range"))
	}
	got := authed(t, r, http.MethodPut, loc+"?digest="+digestString([]byte("abc")), nil, nil)
	if got.status != http.StatusCreated {
		t.Fatalf("PUT: %d %s", got.status, got.body)
	}
	blob := authed(t, r, http.MethodGet, "/v2/slow/blobs/"+digestString([]byte("abc")), nil, nil)
	if diff := cmp.Diff("abc", string(blob.body)); diff != "" {
		t.Errorf("stored blob (-want +got):\n%s", diff)
	}
}

// patternReader yields size bytes of a repeating pattern, hashing them,
// without allocating.
type patternReader struct {
	left int64
	sum  hash.Hash
	pat  []byte
	off  int
}

func (p *patternReader) Read(b []byte) (int, error) {
	if p.left == 0 {
		return 0, io.EOF
	}
	n := 0
	for n < len(b) && p.left > 0 {
		chunk := p.pat[p.off:]
		if int64(len(chunk)) > p.left {
			chunk = chunk[:p.left]
		}
		c := copy(b[n:], chunk)
		n += c
		p.left -= int64(c)
		p.off = (p.off + c) % len(p.pat)
	}
	p.sum.Write(b[:n])
	return n, nil
}

// TestRegistryLargeUploadIsNotKeptInMemory streams a 200 MB chunk and
// checks that the process allocated far less than that while receiving it.
func TestRegistryLargeUploadIsNotKeptInMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("streams 200 MB")
	}
	const size = 200 << 20
	r := openTestRack(t, "")
	loc := startUpload(t, r, "large")
	creds, err := r.Registry().Credentials(t.Context(), "")
	must(t, err)
	pat := make([]byte, 4093)
	for i := range pat {
		pat[i] = byte(i * 7)
	}
	src := &patternReader{left: size, sum: sha256.New(), pat: pat}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPatch, "http://"+r.Registry().Host()+loc, src)
	must(t, err)
	req.ContentLength = size
	req.SetBasicAuth(creds.Username, creds.Password)

	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	resp, err := http.DefaultClient.Do(req)
	must(t, err)
	resp.Body.Close()
	runtime.ReadMemStats(&after)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("PATCH: %d", resp.StatusCode)
	}
	allocated := after.TotalAlloc - before.TotalAlloc
	t.Logf("receiving %d bytes allocated %d bytes", size, allocated)
	if allocated > size/8 {
		t.Errorf("receiving a %d-byte chunk allocated %d bytes; want it spooled to disk, well under %d", size, allocated, size/8)
	}
	digest := "sha256:" + hex.EncodeToString(src.sum.Sum(nil))
	if got := authed(t, r, http.MethodPut, loc+"?digest="+digest, nil, nil); got.status != http.StatusCreated {
		t.Fatalf("PUT: %d %s", got.status, got.body)
	}
	h, err := parseDigest(digest)
	must(t, err)
	fi, err := os.Stat(r.Registry().blobPath("large", h))
	must(t, err)
	if fi.Size() != size {
		t.Errorf("stored blob has %d bytes, want %d", fi.Size(), size)
	}
}

// TestRegistryStalledBodyIsCutOff serves a registry whose idle deadline is
// short and sends a chunk that stops after one byte: the server gives up
// on it, answers or drops the request, and removes the upload.
func TestRegistryStalledBodyIsCutOff(t *testing.T) {
	reg, err := newRegistry(t.TempDir(), 0, slog.New(slog.DiscardHandler))
	must(t, err)
	reg.ioIdle = 20 * time.Millisecond
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	reg.host = ln.Addr().String()
	srv := reg.server()
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	c, err := reg.Credentials(t.Context(), "")
	must(t, err)
	do := func(method, path string, body io.Reader) (*http.Response, error) {
		req, err := http.NewRequestWithContext(t.Context(), method, "http://"+reg.host+path, body)
		must(t, err)
		req.SetBasicAuth(c.Username, c.Password)
		return http.DefaultClient.Do(req)
	}
	resp, err := do(http.MethodPost, "/v2/stalled/blobs/uploads/", nil)
	must(t, err)
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusAccepted || reg.uploads.count() != 1 {
		t.Fatalf("POST: %d with %d uploads", resp.StatusCode, reg.uploads.count())
	}

	pr, pw := io.Pipe()
	t.Cleanup(func() { pw.Close() })
	go pw.Write([]byte("a")) // and nothing more
	resp, err = do(http.MethodPatch, loc, pr)
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("stalled PATCH answered %d, want 400 or a dropped connection", resp.StatusCode)
		}
	}
	waitFor(t, "the stalled upload to be removed", func() bool { return reg.uploads.count() == 0 })
	entries, err := os.ReadDir(reg.uploads.dir)
	must(t, err)
	if len(entries) != 0 {
		t.Errorf("the spool directory holds %d files after the stalled upload, want none", len(entries))
	}
}

func TestRegistryMountsABlobFromAnotherRepository(t *testing.T) {
	r := openTestRack(t, "")
	blob := []byte("shared layer")
	if got := authed(t, r, http.MethodPost, "/v2/source/blobs/uploads/?digest="+digestString(blob), bytes.NewReader(blob), nil); got.status != http.StatusCreated {
		t.Fatalf("upload: %d %s", got.status, got.body)
	}
	tests := []struct {
		name       string
		query      string
		wantStatus int
		wantBlob   bool
	}{
		{"a blob of another repository is mounted", "?mount=" + digestString(blob) + "&from=source", http.StatusCreated, true},
		{"a blob the other repository lacks starts an upload", "?mount=" + digestString([]byte("other")) + "&from=source", http.StatusAccepted, false},
		{"an invalid source repository starts an upload", "?mount=" + digestString(blob) + "&from=../source", http.StatusAccepted, false},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			repo := "target" + strconv.Itoa(i)
			got := authed(t, r, http.MethodPost, "/v2/"+repo+"/blobs/uploads/"+tt.query, nil, nil)
			if got.status != tt.wantStatus {
				t.Fatalf("POST: %d %s, want %d", got.status, got.body, tt.wantStatus)
			}
			read := authed(t, r, http.MethodGet, "/v2/"+repo+"/blobs/"+digestString(blob), nil, nil)
			if has := read.status == http.StatusOK && string(read.body) == string(blob); has != tt.wantBlob {
				t.Errorf("%s has the blob = %v, want %v", repo, has, tt.wantBlob)
			}
		})
	}
}
