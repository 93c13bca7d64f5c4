package local

import (
	"bytes"
	"context"
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

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/convox-go/convox/providers"
)

var discardLogger = log.New(io.Discard, "", 0)

// repoKey is the context key of a blob request's repository.
type repoKey struct{}

// blobRepo returns the repository of a blob request.
func blobRepo(ctx context.Context, fallback string) string {
	if repo, ok := ctx.Value(repoKey{}).(string); ok {
		return repo
	}
	return fallback
}

// ServeHTTP serves the OCI distribution API: blobs through pkg/registry,
// manifests, tags and the catalog from the layouts.
func (r *Registry) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	p := req.URL.Path
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	switch {
	case p == "/v2/" || p == "/v2":
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, "{}")
	case p == "/v2/_catalog":
		r.serveCatalog(w, req)
	case !strings.HasPrefix(p, "/v2/"):
		regError(w, http.StatusNotFound, "NOT_FOUND", "not a registry path")
	case isBlobPath(p):
		// pkg/registry derives the repository of an upload's final PUT
		// with a "/blobs" suffix; pass the real one along instead.
		repo := strings.TrimPrefix(p[:strings.LastIndex(p, "/blobs/")], "/v2/")
		if validateRepo(repo) != nil {
			regError(w, http.StatusBadRequest, "NAME_INVALID", "invalid repository name")
			return
		}
		r.blobs.ServeHTTP(w, req.WithContext(context.WithValue(req.Context(), repoKey{}, repo)))
	default:
		rest := strings.TrimPrefix(p, "/v2/")
		if repo, ref, ok := strings.Cut(rest, "/manifests/"); ok {
			r.serveManifest(w, req, repo, ref)
			return
		}
		if repo, ok := strings.CutSuffix(rest, "/tags/list"); ok {
			r.serveTags(w, req, repo)
			return
		}
		regError(w, http.StatusNotFound, "NOT_FOUND", "unknown registry path")
	}
}

func isBlobPath(p string) bool {
	elem := strings.Split(strings.TrimSuffix(p, "/"), "/")
	n := len(elem)
	return n >= 4 && (elem[n-2] == "blobs" || (n >= 5 && elem[n-3] == "blobs" && elem[n-2] == "uploads"))
}

func regError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"errors": []map[string]string{{"code": code, "message": msg}}})
}

func (r *Registry) serveCatalog(w http.ResponseWriter, req *http.Request) {
	entries, err := os.ReadDir(r.dir)
	if err != nil {
		regError(w, http.StatusInternalServerError, "UNKNOWN", err.Error())
		return
	}
	repos := []string{}
	for _, e := range entries {
		if n, err := url.PathUnescape(e.Name()); err == nil && e.IsDir() && r.exists(n) {
			repos = append(repos, n)
		}
	}
	slices.Sort(repos)
	repos = pageNames(repos, req)
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"repositories": repos})
}

// pageNames applies the "last" and "n" query parameters to sorted names.
func pageNames(names []string, req *http.Request) []string {
	if last := req.URL.Query().Get("last"); last != "" {
		i, _ := slices.BinarySearch(names, last)
		for i < len(names) && names[i] <= last {
			i++
		}
		names = names[i:]
	}
	if n, err := strconv.Atoi(req.URL.Query().Get("n")); err == nil && n >= 0 && n < len(names) {
		names = names[:n]
	}
	return names
}

func (r *Registry) serveTags(w http.ResponseWriter, req *http.Request, repo string) {
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
	tags = pageNames(slices.Compact(tags), req)
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"name": repo, "tags": tags})
}

func (r *Registry) serveManifest(w http.ResponseWriter, req *http.Request, repo, ref string) {
	if validateRepo(repo) != nil {
		regError(w, http.StatusBadRequest, "NAME_INVALID", "invalid repository name")
		return
	}
	switch req.Method {
	case http.MethodGet, http.MethodHead:
		desc, err := r.lookupManifest(repo, ref)
		if err != nil {
			regError(w, http.StatusNotFound, "MANIFEST_UNKNOWN", err.Error())
			return
		}
		f, err := os.Open(r.blobPath(repo, desc.Digest))
		if err != nil {
			regError(w, http.StatusNotFound, "MANIFEST_UNKNOWN", "manifest blob is missing")
			return
		}
		defer f.Close()
		w.Header().Set("Content-Type", string(desc.MediaType))
		w.Header().Set("Docker-Content-Digest", desc.Digest.String())
		w.Header().Set("Content-Length", strconv.FormatInt(desc.Size, 10))
		if req.Method == http.MethodGet {
			io.Copy(w, f)
		}
	case http.MethodPut:
		r.putManifest(w, req, repo, ref)
	case http.MethodDelete:
		if !r.exists(repo) {
			regError(w, http.StatusNotFound, "NAME_UNKNOWN", "unknown repository")
			return
		}
		h, herr := v1.NewHash(ref)
		err := r.updateIndex(repo, func(im *v1.IndexManifest) {
			im.Manifests = slices.DeleteFunc(im.Manifests, func(d v1.Descriptor) bool {
				if herr == nil {
					return d.Digest == h
				}
				return d.Annotations[refNameAnnotation] == ref
			})
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
	raw, err := os.ReadFile(r.blobPath(repo, h))
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("manifest %s: %w", h, providers.ErrNotFound)
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
	raw, err := io.ReadAll(io.LimitReader(req.Body, maxManifestBytes+1))
	if err != nil {
		regError(w, http.StatusBadRequest, "MANIFEST_INVALID", err.Error())
		return
	}
	if len(raw) > maxManifestBytes {
		regError(w, http.StatusRequestEntityTooLarge, "SIZE_INVALID", "manifest too large")
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
	if err := r.ensureLayout(repo); err != nil {
		regError(w, http.StatusInternalServerError, "UNKNOWN", err.Error())
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
		code := http.StatusInternalServerError
		if errors.Is(err, providers.ErrNotFound) {
			code = http.StatusNotFound
		}
		regError(w, code, "UNKNOWN", err.Error())
		return
	}
	w.Header().Set("Docker-Content-Digest", desc.Digest.String())
	w.Header().Set("Location", "/v2/"+repo+"/manifests/"+desc.Digest.String())
	w.WriteHeader(http.StatusCreated)
}
