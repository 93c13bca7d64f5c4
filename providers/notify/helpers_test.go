package notify_test

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/convox-go/convox/providers"
)

// t0 is the time of the test notifications.
var t0 = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

// failed is a failed, rolled-back deploy notification.
var failed = providers.Notification{
	Kind: providers.NotifyDeployFailed, App: "web", Release: "R2", Previous: "R1",
	Summary: "deploy of R2 failed at wait", Reason: "exit status 2", RolledBack: true, Time: t0,
}

// decode parses JSON text into generic values for cmp.Diff.
func decode(t *testing.T, data []byte) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatalf("decode %q: %v", data, err)
	}
	return v
}

// reply is one scripted answer of a transport.
type reply struct {
	status int
	header http.Header
	body   string
	// err, when set, is returned instead of a response.
	err error
	// hang blocks until the request's context ends.
	hang bool
}

// attempt is one request a transport received.
type attempt struct {
	at     time.Time
	method string
	url    string
	header http.Header
	body   []byte
}

// transport is an in-memory http.RoundTripper for testing/synctest
// bubbles: the i-th request gets replies[i] (the last reply repeats) and is
// recorded with the time it arrived.
type transport struct {
	replies []reply

	mu  sync.Mutex
	got []attempt
}

func (tr *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil {
		body, _ = io.ReadAll(req.Body)
		req.Body.Close()
	}
	tr.mu.Lock()
	i := len(tr.got)
	tr.got = append(tr.got, attempt{at: time.Now(), method: req.Method, url: req.URL.String(), header: req.Header.Clone(), body: body})
	r := tr.replies[min(i, len(tr.replies)-1)]
	tr.mu.Unlock()
	switch {
	case r.hang:
		<-req.Context().Done()
		return nil, req.Context().Err()
	case r.err != nil:
		return nil, r.err
	}
	h := r.header
	if h == nil {
		h = http.Header{}
	}
	return &http.Response{
		StatusCode: r.status,
		Status:     http.StatusText(r.status),
		Proto:      "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:  h,
		Body:    io.NopCloser(strings.NewReader(r.body)),
		Request: req,
	}, nil
}

// attempts returns the recorded requests.
func (tr *transport) attempts() []attempt {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return append([]attempt(nil), tr.got...)
}

// client returns an http.Client over the transport.
func (tr *transport) client() *http.Client { return &http.Client{Transport: tr} }

// category names the providers sentinel err matches, for comparisons.
func category(err error) string {
	for _, c := range []struct {
		name string
		err  error
	}{
		{"throttled", providers.ErrThrottled},
		{"unavailable", providers.ErrUnavailable},
		{"permission", providers.ErrPermission},
		{"conflict", providers.ErrConflict},
		{"invalid", providers.ErrInvalid},
		{"not found", providers.ErrNotFound},
	} {
		if errors.Is(err, c.err) {
			return c.name
		}
	}
	if err == nil {
		return "nil"
	}
	return "other: " + err.Error()
}
