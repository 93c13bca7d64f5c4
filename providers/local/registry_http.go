package local

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/convox-go/convox/providers"
)

var discardLogger = log.New(io.Discard, "", 0)

const (
	// defaultIOIdle is how long a request body or a blob response may go
	// without moving a byte before its connection is closed. A slow client
	// holds only its own request (and, for an upload, that upload).
	defaultIOIdle = time.Minute
	// maxPage bounds the names of one tags/list or _catalog response; the
	// rest follows through the Link header, as the distribution API pages.
	maxPage = 1000
	// copyBuffer is the size of the chunks a blob is served in.
	copyBuffer = 32 << 10
)

// server returns the HTTP server of the registry's API: headers must
// arrive within 10 seconds, an idle keep-alive connection closes after two
// minutes, and request bodies and blob responses have per-read and
// per-write idle deadlines (a minute) instead of a total timeout that a
// large upload would exceed. Shutting it down removes the uploads in
// progress.
func (r *Registry) server() *http.Server {
	s := &http.Server{
		Handler:           r,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          discardLogger,
	}
	s.RegisterOnShutdown(r.uploads.closeAll)
	return s
}

// ServeHTTP serves the OCI distribution API from the layouts. Every
// request needs the registry's credential (Credentials); without it the
// answer is 401 with a basic-auth challenge.
func (r *Registry) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	if !r.cred.authorized(req) {
		unauthorized(w)
		return
	}
	p := req.URL.Path
	switch {
	case p == "/v2/" || p == "/v2":
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, "{}")
		return
	case p == "/v2/_catalog":
		if req.Method != http.MethodGet {
			regError(w, http.StatusMethodNotAllowed, "UNSUPPORTED", "method not allowed")
			return
		}
		r.serveCatalog(w, req)
		return
	case !strings.HasPrefix(p, "/v2/"):
		regError(w, http.StatusNotFound, "NOT_FOUND", "not a registry path")
		return
	}
	rt, ok := parseRoute(strings.TrimPrefix(p, "/v2/"))
	if !ok {
		regError(w, http.StatusNotFound, "NOT_FOUND", "unknown registry path")
		return
	}
	if validateRepo(rt.repo) != nil {
		regError(w, http.StatusBadRequest, "NAME_INVALID", "invalid repository name")
		return
	}
	switch rt.kind {
	case routeUploads:
		r.startUpload(w, req, rt.repo)
	case routeUpload:
		r.serveUpload(w, req, rt.repo, rt.ref)
	case routeBlob:
		r.serveBlob(w, req, rt.repo, rt.ref)
	case routeManifest:
		r.serveManifest(w, req, rt.repo, rt.ref)
	case routeTags:
		r.serveTags(w, req, rt.repo)
	}
}

type routeKind int

const (
	routeUploads  routeKind = iota // <repo>/blobs/uploads/
	routeUpload                    // <repo>/blobs/uploads/<id>
	routeBlob                      // <repo>/blobs/<digest>
	routeManifest                  // <repo>/manifests/<reference>
	routeTags                      // <repo>/tags/list
)

type apiRoute struct {
	kind      routeKind
	repo, ref string
}

// parseRoute splits a path after /v2/ into its route. The repository is
// whatever precedes the route's last fixed elements; callers validate it.
func parseRoute(rest string) (apiRoute, bool) {
	last := func(sep string) (string, string, bool) {
		i := strings.LastIndex(rest, sep)
		if i <= 0 || strings.Contains(rest[i+len(sep):], "/") || i+len(sep) == len(rest) {
			return "", "", false
		}
		return rest[:i], rest[i+len(sep):], true
	}
	for _, suffix := range []string{"/blobs/uploads/", "/blobs/uploads"} {
		if repo, ok := strings.CutSuffix(rest, suffix); ok && repo != "" {
			return apiRoute{kind: routeUploads, repo: repo}, true
		}
	}
	if repo, ok := strings.CutSuffix(rest, "/tags/list"); ok && repo != "" {
		return apiRoute{kind: routeTags, repo: repo}, true
	}
	if repo, id, ok := last("/blobs/uploads/"); ok {
		return apiRoute{kind: routeUpload, repo: repo, ref: id}, true
	}
	if repo, d, ok := last("/blobs/"); ok {
		return apiRoute{kind: routeBlob, repo: repo, ref: d}, true
	}
	if repo, ref, ok := last("/manifests/"); ok {
		return apiRoute{kind: routeManifest, repo: repo, ref: ref}, true
	}
	return apiRoute{}, false
}

func regError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Del("Content-Length")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"errors": []map[string]string{{"code": code, "message": msg}}})
}

// parseDigest parses a sha256 digest, the only algorithm the registry
// stores.
func parseDigest(s string) (v1.Hash, error) {
	h, err := v1.NewHash(s)
	if err != nil {
		return v1.Hash{}, err
	}
	if h.Algorithm != "sha256" {
		return v1.Hash{}, fmt.Errorf("digest %s: only sha256 is supported", s)
	}
	return h, nil
}

// errBodyRead marks an error reading a request body: the client went away
// or stalled past the idle deadline.
var errBodyRead = errors.New("reading the request body")

// idleBody reads a request body with a read deadline of idle from each
// read, so a stalled client releases what it holds.
type idleBody struct {
	rc   *http.ResponseController
	r    io.Reader
	idle time.Duration
}

func (b idleBody) Read(p []byte) (int, error) {
	_ = b.rc.SetReadDeadline(time.Now().Add(b.idle))
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF {
		err = fmt.Errorf("%w: %w", errBodyRead, err)
	}
	return n, err
}

// body returns the request's body with the registry's idle deadline.
func (r *Registry) body(w http.ResponseWriter, req *http.Request) io.Reader {
	return idleBody{rc: http.NewResponseController(w), r: req.Body, idle: r.ioIdle}
}

// idleWriter writes a response with a write deadline of idle from each
// write, so a client that stops reading releases what it holds.
type idleWriter struct {
	http.ResponseWriter
	rc   *http.ResponseController
	idle time.Duration
}

func (w idleWriter) Write(p []byte) (int, error) {
	_ = w.rc.SetWriteDeadline(time.Now().Add(w.idle))
	return w.ResponseWriter.Write(p)
}

// uploadError answers a failed blob upload.
func uploadError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, errBlobTooLarge):
		regError(w, http.StatusRequestEntityTooLarge, "SIZE_INVALID", err.Error())
	case errors.Is(err, errUploadUnknown):
		regError(w, http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN", "blob upload unknown (finished, canceled or expired)")
	case errors.Is(err, errUploadBusy):
		regError(w, http.StatusConflict, "BLOB_UPLOAD_INVALID", err.Error())
	case errors.Is(err, errTooManyUploads):
		regError(w, http.StatusTooManyRequests, "TOOMANYREQUESTS", fmt.Sprintf("%v (at most %d): finish or cancel some first", err, maxUploads))
	case errors.Is(err, errDigestMismatch):
		regError(w, http.StatusBadRequest, "DIGEST_INVALID", err.Error())
	case errors.Is(err, errBodyRead):
		regError(w, http.StatusBadRequest, "BLOB_UPLOAD_INVALID", err.Error())
	default:
		regError(w, http.StatusInternalServerError, "UNKNOWN", err.Error())
	}
}

func blobLocation(repo string, h v1.Hash) string { return "/v2/" + repo + "/blobs/" + h.String() }

func uploadLocation(repo, id string) string { return "/v2/" + repo + "/blobs/uploads/" + id }

// startUpload answers POST <repo>/blobs/uploads/: a cross-repository
// mount, a monolithic upload (?digest=) or the start of a chunked one.
func (r *Registry) startUpload(w http.ResponseWriter, req *http.Request, repo string) {
	if req.Method != http.MethodPost {
		regError(w, http.StatusMethodNotAllowed, "UNSUPPORTED", "method not allowed")
		return
	}
	q := req.URL.Query()
	if h, err := parseDigest(q.Get("mount")); err == nil && validateRepo(q.Get("from")) == nil && r.hasBlob(q.Get("from"), h) {
		if r.mountBlob(q.Get("from"), repo, h) == nil {
			w.Header().Set("Location", blobLocation(repo, h))
			w.Header().Set("Docker-Content-Digest", h.String())
			w.WriteHeader(http.StatusCreated)
			return
		}
		// Otherwise start an upload, as the distribution API allows.
	}
	if d := q.Get("digest"); d != "" {
		h, err := parseDigest(d)
		if err != nil {
			regError(w, http.StatusBadRequest, "DIGEST_INVALID", err.Error())
			return
		}
		if req.ContentLength > r.uploads.max {
			uploadError(w, r.uploads.tooLarge())
			return
		}
		if err := r.writeBlob(repo, h, r.body(w, req)); err != nil {
			uploadError(w, err)
			return
		}
		w.Header().Set("Location", blobLocation(repo, h))
		w.Header().Set("Docker-Content-Digest", h.String())
		w.WriteHeader(http.StatusCreated)
		return
	}
	u, err := r.uploads.start(repo)
	if err != nil {
		uploadError(w, err)
		return
	}
	w.Header().Set("Location", uploadLocation(repo, u.id))
	w.Header().Set("Docker-Upload-UUID", u.id)
	w.Header().Set("Range", "0-0")
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusAccepted)
}

// mountBlob copies blob h of from into repo, verified.
func (r *Registry) mountBlob(from, repo string, h v1.Hash) error {
	f, err := r.openBlob(from, h)
	if err != nil {
		return err
	}
	defer f.Close()
	return r.writeBlob(repo, h, f)
}

// serveUpload answers requests on a chunked upload: its status (GET), a
// chunk (PATCH), the last chunk and the digest (PUT) or its cancellation
// (DELETE). A failed write removes the upload: its client starts again.
func (r *Registry) serveUpload(w http.ResponseWriter, req *http.Request, repo, id string) {
	us := r.uploads
	var digest v1.Hash
	switch req.Method {
	case http.MethodGet, http.MethodPatch, http.MethodDelete:
	case http.MethodPut:
		h, err := parseDigest(req.URL.Query().Get("digest"))
		if err != nil {
			regError(w, http.StatusBadRequest, "DIGEST_INVALID", "the digest parameter must be a sha256 digest")
			return
		}
		digest = h
	default:
		regError(w, http.StatusMethodNotAllowed, "UNSUPPORTED", "method not allowed")
		return
	}
	u, err := us.acquire(repo, id)
	if err != nil {
		uploadError(w, err)
		return
	}
	progress := func() {
		w.Header().Set("Location", uploadLocation(repo, id))
		w.Header().Set("Docker-Upload-UUID", id)
		w.Header().Set("Range", fmt.Sprintf("0-%d", max(u.size-1, 0)))
		w.Header().Set("Content-Length", "0")
	}
	switch req.Method {
	case http.MethodGet:
		progress()
		us.release(u)
		w.WriteHeader(http.StatusNoContent)
		return
	case http.MethodDelete:
		us.remove(u)
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if cr := req.Header.Get("Content-Range"); cr != "" && req.Method == http.MethodPatch {
		var start, end int64
		if _, err := fmt.Sscanf(strings.TrimPrefix(cr, "bytes "), "%d-%d", &start, &end); err != nil || start != u.size {
			progress()
			us.release(u)
			regError(w, http.StatusRequestedRangeNotSatisfiable, "BLOB_UPLOAD_INVALID", fmt.Sprintf("Content-Range %q does not continue the upload, which has %d bytes", cr, u.size))
			return
		}
	}
	if req.ContentLength > us.max-u.size {
		us.remove(u)
		uploadError(w, us.tooLarge())
		return
	}
	if err := us.write(u, r.body(w, req)); err != nil {
		us.remove(u)
		uploadError(w, err)
		return
	}
	if req.Method == http.MethodPatch {
		progress()
		us.release(u)
		w.WriteHeader(http.StatusAccepted)
		return
	}
	if got := u.digest(); got != digest {
		us.remove(u)
		uploadError(w, fmt.Errorf("%w: the upload has digest %s, not %s", errDigestMismatch, got, digest))
		return
	}
	err = r.commitBlob(repo, digest, u.path)
	us.remove(u)
	if err != nil {
		uploadError(w, err)
		return
	}
	w.Header().Set("Location", blobLocation(repo, digest))
	w.Header().Set("Docker-Content-Digest", digest.String())
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
}

// serveBlob answers HEAD and GET of a blob. A GET streams the blob while
// hashing it and holds its last chunk back until the digest matches: a
// corrupt blob is logged and its response aborted, so no client receives
// it whole. A ranged GET verifies the whole blob first.
func (r *Registry) serveBlob(w http.ResponseWriter, req *http.Request, repo, ref string) {
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		regError(w, http.StatusMethodNotAllowed, "UNSUPPORTED", "blobs are deleted with their images")
		return
	}
	h, err := parseDigest(ref)
	if err != nil {
		regError(w, http.StatusBadRequest, "DIGEST_INVALID", err.Error())
		return
	}
	path := r.blobPath(repo, h)
	f, err := os.Open(path)
	if err != nil {
		regError(w, http.StatusNotFound, "BLOB_UNKNOWN", "blob unknown to the repository")
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		regError(w, http.StatusInternalServerError, "UNKNOWN", err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Docker-Content-Digest", h.String())
	out := idleWriter{ResponseWriter: w, rc: http.NewResponseController(w), idle: r.ioIdle}
	if req.Method == http.MethodGet && req.Header.Get("Range") != "" {
		f.Close()
		vf, err := r.openBlob(repo, h)
		if err != nil {
			regError(w, http.StatusInternalServerError, "BLOB_UNKNOWN", err.Error())
			return
		}
		defer vf.Close()
		http.ServeContent(out, req, "", time.Time{}, vf)
		return
	}
	w.Header().Set("Content-Length", strconv.FormatInt(fi.Size(), 10))
	w.WriteHeader(http.StatusOK)
	if req.Method == http.MethodHead {
		return
	}
	if got, err := copyVerified(out, f, h); err == nil && got != h.Hex {
		r.corrupt(repo, h, f, "sha256:"+got)
		panic(http.ErrAbortHandler) // ends the response short of its length
	}
}

// copyVerified copies src to dst while hashing it, writing each chunk only
// once the next one is read, and writes the last chunk only if the content
// has digest want. It returns the content's hex sha256 (when src was read
// to its end) and the copy's error.
func copyVerified(dst io.Writer, src io.Reader, want v1.Hash) (string, error) {
	sum := sha256.New()
	bufs := [2][]byte{make([]byte, copyBuffer), make([]byte, copyBuffer)}
	var pending []byte
	for i := 0; ; i ^= 1 {
		n, err := io.ReadFull(src, bufs[i])
		chunk := bufs[i][:n]
		sum.Write(chunk)
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			got := hex.EncodeToString(sum.Sum(nil))
			if got != want.Hex {
				return got, nil
			}
			for _, c := range [][]byte{pending, chunk} {
				if _, err := dst.Write(c); err != nil {
					return got, err
				}
			}
			return got, nil
		}
		if err != nil {
			return "", err
		}
		if pending != nil {
			if _, err := dst.Write(pending); err != nil {
				return "", err
			}
		}
		pending = chunk
	}
}

// page reads the "n" and "last" parameters of a listing: at most maxPage
// names after last.
func page(req *http.Request) (n int, last string, err error) {
	q := req.URL.Query()
	n = maxPage
	if s := q.Get("n"); s != "" {
		n, err = strconv.Atoi(s)
		if err != nil || n < 0 {
			return 0, "", fmt.Errorf("n=%q is not a number of entries", s)
		}
		n = min(n, maxPage)
	}
	return n, q.Get("last"), nil
}

// pageNames returns at most n of the sorted names after last, and whether
// more follow.
func pageNames(names []string, n int, last string) ([]string, bool) {
	if last != "" {
		i, found := slices.BinarySearch(names, last)
		if found {
			i++
		}
		names = names[i:]
	}
	if n < len(names) {
		return names[:n], true
	}
	return names, false
}

// writeListing writes a listing page, with a Link header to the next one.
func writeListing(w http.ResponseWriter, path string, n int, names []string, more bool, body map[string]any) {
	if more && len(names) > 0 {
		q := url.Values{"n": {strconv.Itoa(n)}, "last": {names[len(names)-1]}}
		w.Header().Set("Link", fmt.Sprintf(`<%s?%s>; rel="next"`, path, q.Encode()))
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(body)
}

func (r *Registry) serveCatalog(w http.ResponseWriter, req *http.Request) {
	n, last, err := page(req)
	if err != nil {
		regError(w, http.StatusBadRequest, "PAGINATION_NUMBER_INVALID", err.Error())
		return
	}
	entries, err := os.ReadDir(r.dir)
	if err != nil {
		regError(w, http.StatusInternalServerError, "UNKNOWN", err.Error())
		return
	}
	repos := []string{}
	for _, e := range entries {
		if repo, err := url.PathUnescape(e.Name()); err == nil && e.IsDir() && validateRepo(repo) == nil && r.exists(repo) {
			repos = append(repos, repo)
		}
	}
	slices.Sort(repos)
	repos, more := pageNames(repos, n, last)
	writeListing(w, "/v2/_catalog", n, repos, more, map[string]any{"repositories": repos})
}

func (r *Registry) serveTags(w http.ResponseWriter, req *http.Request, repo string) {
	if req.Method != http.MethodGet {
		regError(w, http.StatusMethodNotAllowed, "UNSUPPORTED", "method not allowed")
		return
	}
	n, last, err := page(req)
	if err != nil {
		regError(w, http.StatusBadRequest, "PAGINATION_NUMBER_INVALID", err.Error())
		return
	}
	im, err := r.readIndex(repo)
	if err != nil {
		regError(w, http.StatusNotFound, "NAME_UNKNOWN", err.Error())
		return
	}
	tags := []string{}
	for _, d := range im.Manifests {
		if t := d.Annotations[refNameAnnotation]; t != "" {
			tags = append(tags, t)
		}
	}
	slices.Sort(tags)
	tags, more := pageNames(slices.Compact(tags), n, last)
	writeListing(w, "/v2/"+repo+"/tags/list", n, tags, more, map[string]any{"name": repo, "tags": tags})
}

func (r *Registry) serveManifest(w http.ResponseWriter, req *http.Request, repo, ref string) {
	switch req.Method {
	case http.MethodGet, http.MethodHead:
		desc, err := r.lookupManifest(repo, ref)
		if err != nil {
			regError(w, http.StatusNotFound, "MANIFEST_UNKNOWN", err.Error())
			return
		}
		raw, err := r.readBlob(repo, desc.Digest, maxManifestBytes)
		if errors.Is(err, providers.ErrNotFound) {
			regError(w, http.StatusNotFound, "MANIFEST_UNKNOWN", "manifest blob is missing")
			return
		}
		if err != nil {
			regError(w, http.StatusInternalServerError, "UNKNOWN", err.Error())
			return
		}
		w.Header().Set("Content-Type", string(desc.MediaType))
		w.Header().Set("Docker-Content-Digest", desc.Digest.String())
		w.Header().Set("Content-Length", strconv.Itoa(len(raw)))
		if req.Method == http.MethodGet {
			w.Write(raw)
		}
	case http.MethodPut:
		r.putManifest(w, req, repo, ref)
	case http.MethodDelete:
		if !r.exists(repo) {
			regError(w, http.StatusNotFound, "NAME_UNKNOWN", "unknown repository")
			return
		}
		h, herr := v1.NewHash(ref)
		err := r.updateIndex(repo, func(im *v1.IndexManifest) error {
			im.Manifests = slices.DeleteFunc(im.Manifests, func(d v1.Descriptor) bool {
				if herr == nil {
					return d.Digest == h
				}
				return d.Annotations[refNameAnnotation] == ref
			})
			return nil
		})
		if err != nil {
			regError(w, http.StatusInternalServerError, "UNKNOWN", err.Error())
			return
		}
		w.WriteHeader(http.StatusAccepted)
	default:
		regError(w, http.StatusMethodNotAllowed, "UNSUPPORTED", "method not allowed")
	}
}

// lookupManifest finds a manifest by tag (in index.json) or digest (any
// manifest blob, including an index's children).
func (r *Registry) lookupManifest(repo, ref string) (v1.Descriptor, error) {
	im, err := r.readIndex(repo)
	if err != nil {
		return v1.Descriptor{}, err
	}
	h, herr := v1.NewHash(ref)
	for _, d := range im.Manifests {
		if (herr == nil && d.Digest == h) || (herr != nil && d.Annotations[refNameAnnotation] == ref) {
			return d, nil
		}
	}
	if herr != nil {
		return v1.Descriptor{}, fmt.Errorf("tag %q: %w", ref, providers.ErrNotFound)
	}
	if ok, err := r.listed(repo, h); err != nil || !ok {
		return v1.Descriptor{}, fmt.Errorf("manifest %s: %w", h, providers.ErrNotFound)
	}
	raw, err := r.readBlob(repo, h, maxManifestBytes)
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("manifest %s: %w", h, err)
	}
	var probe struct {
		MediaType types.MediaType `json:"mediaType"`
	}
	if json.Unmarshal(raw, &probe) != nil || probe.MediaType == "" {
		return v1.Descriptor{}, fmt.Errorf("blob %s is not a manifest: %w", h, providers.ErrNotFound)
	}
	return v1.Descriptor{MediaType: probe.MediaType, Digest: h, Size: int64(len(raw))}, nil
}

func (r *Registry) putManifest(w http.ResponseWriter, req *http.Request, repo, ref string) {
	if req.ContentLength > maxManifestBytes {
		regError(w, http.StatusRequestEntityTooLarge, "SIZE_INVALID", fmt.Sprintf("a manifest may have at most %d bytes", maxManifestBytes))
		return
	}
	raw, err := io.ReadAll(io.LimitReader(r.body(w, req), maxManifestBytes+1))
	if err != nil {
		regError(w, http.StatusBadRequest, "MANIFEST_INVALID", err.Error())
		return
	}
	if len(raw) > maxManifestBytes {
		regError(w, http.StatusRequestEntityTooLarge, "SIZE_INVALID", fmt.Sprintf("a manifest may have at most %d bytes", maxManifestBytes))
		return
	}
	desc := v1.Descriptor{MediaType: types.MediaType(req.Header.Get("Content-Type")), Size: int64(len(raw)), Digest: digestOf(raw)}
	var probe struct {
		MediaType types.MediaType `json:"mediaType"`
		Config    *v1.Descriptor  `json:"config"`
		Layers    []v1.Descriptor `json:"layers"`
		Manifests []v1.Descriptor `json:"manifests"`
	}
	if err := json.Unmarshal(raw, &probe); err != nil {
		regError(w, http.StatusBadRequest, "MANIFEST_INVALID", err.Error())
		return
	}
	if desc.MediaType == "" {
		desc.MediaType = probe.MediaType
	}
	tag := ""
	if h, err := v1.NewHash(ref); err == nil {
		if h != desc.Digest {
			regError(w, http.StatusBadRequest, "DIGEST_INVALID", fmt.Sprintf("manifest digest is %s, not %s", desc.Digest, h))
			return
		}
	} else if tagPattern.MatchString(ref) {
		tag = ref
	} else {
		regError(w, http.StatusBadRequest, "TAG_INVALID", "invalid tag")
		return
	}
	refs := probe.Layers
	if probe.Config != nil {
		refs = append(refs, *probe.Config)
	}
	for _, d := range append(refs, probe.Manifests...) {
		if !r.hasBlob(repo, d.Digest) {
			code := "MANIFEST_BLOB_UNKNOWN"
			if len(probe.Manifests) > 0 {
				code = "MANIFEST_UNKNOWN"
			}
			regError(w, http.StatusBadRequest, code, fmt.Sprintf("referenced %s is not in the repository", d.Digest))
			return
		}
	}
	if err := r.writeBlob(repo, desc.Digest, bytes.NewReader(raw)); err != nil {
		regError(w, http.StatusInternalServerError, "UNKNOWN", err.Error())
		return
	}
	if err := r.tag(repo, tag, desc); err != nil {
		switch {
		case errors.Is(err, errRepositoryFull):
			regError(w, http.StatusForbidden, "DENIED", err.Error())
		case errors.Is(err, providers.ErrNotFound):
			regError(w, http.StatusNotFound, "NAME_UNKNOWN", err.Error())
		default:
			regError(w, http.StatusInternalServerError, "UNKNOWN", err.Error())
		}
		return
	}
	w.Header().Set("Docker-Content-Digest", desc.Digest.String())
	w.Header().Set("Location", "/v2/"+repo+"/manifests/"+desc.Digest.String())
	w.WriteHeader(http.StatusCreated)
}
