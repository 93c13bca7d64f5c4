package local

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/go-cmp/cmp"

	"github.com/convox-go/convox/providers"
)

// proxyRoute starts a balancer with one route whose default set has one
// healthy target served by handler, with the given deregistration delay.
func proxyRoute(t *testing.T, delay time.Duration, handler http.HandlerFunc) (*Balancer, providers.Route, *backend) {
	t.Helper()
	b := newTestBalancer(t, nil)
	route, err := b.EnsureRoute(t.Context(), providers.RouteSpec{App: "web", Process: "web", Port: 8080, Health: quickHealth, DeregistrationDelay: delay})
	if err != nil {
		t.Fatal(err)
	}
	be := newBackend(t, "backend", handler)
	b.register([]string{route.Binding.Target}, be.addr(), true)
	return b, route, be
}

// clients are the ways a client reaches the balancer: HTTP/1.1 and
// HTTP/2 without TLS (prior knowledge).
func clients(t *testing.T) map[string]*http.Client {
	h1 := &http.Transport{}
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	h2 := &http.Transport{Protocols: &p}
	t.Cleanup(h1.CloseIdleConnections)
	t.Cleanup(h2.CloseIdleConnections)
	return map[string]*http.Client{"HTTP/1.1": {Transport: h1}, "HTTP/2": {Transport: h2}}
}

func TestProxyForwardsHeaders(t *testing.T) {
	seen := make(chan *http.Request, 1)
	_, route, _ := proxyRoute(t, 0, func(w http.ResponseWriter, r *http.Request) {
		seen <- r
		w.Header().Set("X-App", "kept")
		w.Header().Set("Keep-Alive", "timeout=5")
		w.Header().Set("Proxy-Authenticate", "Basic")
		w.Header().Set("X-Hop", "dropped")
		w.Header().Set("Connection", "X-Hop")
		fmt.Fprint(w, "ok")
	})
	// What the target saw (Target...) and what the client got (Client...).
	type got struct {
		TargetProto                                         int
		TargetURI, TargetHost                               string
		TargetXForwardedFor, TargetXForwardedHost           string
		TargetXForwardedProto, TargetForwarded              string
		TargetApp, TargetTe, TargetCustom, TargetProxyAuth  string
		TargetKeepAlive, TargetConnection                   string
		ClientApp, ClientKeepAlive, ClientProxyAuthenticate string
		ClientHop                                           string
		ClientProto, ClientStatus                           int
		ClientBody                                          string
	}
	for name, client := range clients(t) {
		t.Run(name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, route.Endpoint+"/a%2Fb/c?x=1&y=%20z", nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Host = "app.example.test:8080"
			req.Header.Set("X-App", "kept")
			req.Header.Set("X-Forwarded-For", "203.0.113.9")
			req.Header.Set("X-Forwarded-Host", "spoofed.example")
			req.Header.Set("X-Forwarded-Proto", "https")
			req.Header.Set("Forwarded", "for=203.0.113.9")
			req.Header.Set("Te", "trailers")
			req.Header.Set("Proxy-Authorization", "Basic c2VjcmV0")
			if name == "HTTP/1.1" {
				// HTTP/2 forbids connection-specific headers.
				req.Header.Set("Connection", "X-Custom")
				req.Header.Set("X-Custom", "dropped")
				req.Header.Set("Keep-Alive", "timeout=5")
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			r := <-seen
			// Hop-by-hop headers (and those Connection names) stop at the
			// balancer both ways; X-Forwarded-* are the balancer's own.
			want := got{
				TargetProto: 1, TargetURI: "/a%2Fb/c?x=1&y=%20z", TargetHost: "app.example.test:8080",
				TargetXForwardedFor: "127.0.0.1", TargetXForwardedHost: "app.example.test:8080", TargetXForwardedProto: "http",
				TargetApp: "kept", TargetTe: "trailers",
				ClientApp: "kept", ClientProto: req.ProtoMajor, ClientStatus: 200, ClientBody: "ok",
			}
			if name == "HTTP/2" {
				want.ClientProto = 2
			}
			g := got{
				TargetProto: r.ProtoMajor, TargetURI: r.RequestURI, TargetHost: r.Host,
				TargetXForwardedFor: strings.Join(r.Header.Values("X-Forwarded-For"), ","), TargetXForwardedHost: r.Header.Get("X-Forwarded-Host"),
				TargetXForwardedProto: r.Header.Get("X-Forwarded-Proto"), TargetForwarded: r.Header.Get("Forwarded"),
				TargetApp: r.Header.Get("X-App"), TargetTe: r.Header.Get("Te"), TargetCustom: r.Header.Get("X-Custom"),
				TargetProxyAuth: r.Header.Get("Proxy-Authorization"), TargetKeepAlive: r.Header.Get("Keep-Alive"),
				TargetConnection: r.Header.Get("Connection"),
				ClientApp:        resp.Header.Get("X-App"), ClientKeepAlive: resp.Header.Get("Keep-Alive"),
				ClientProxyAuthenticate: resp.Header.Get("Proxy-Authenticate"), ClientHop: resp.Header.Get("X-Hop"),
				ClientProto: resp.ProtoMajor, ClientStatus: resp.StatusCode, ClientBody: string(body),
			}
			if diff := cmp.Diff(want, g); diff != "" {
				t.Errorf("the request the target saw and the response the client got (-want +got):\n%s", diff)
			}
		})
	}
}

func TestProxyPassesInformationalResponses(t *testing.T) {
	_, route, _ := proxyRoute(t, 0, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</style.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Del("Link")
		fmt.Fprint(w, "page")
	})
	for name, client := range clients(t) {
		t.Run(name, func(t *testing.T) {
			var hints []string
			trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
				hints = append(hints, fmt.Sprintf("%d %s", code, h.Get("Link")))
				return nil
			}}
			req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(t.Context(), trace), http.MethodGet, route.Endpoint+"/page", nil)
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			want := []string{"103 </style.css>; rel=preload", "200 page"}
			got := append(hints, fmt.Sprintf("%d %s", resp.StatusCode, body))
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("responses (-want +got):\n%s", diff)
			}
		})
	}
}

func TestProxyWebsocketUpgrade(t *testing.T) {
	_, route, _ := proxyRoute(t, 0, echoWebsocket)
	ws := dialWebsocket(t, route.Endpoint)
	for i := range 3 {
		msg := fmt.Sprintf("message %d", i)
		if got := wsRoundTrip(t, ws, msg); got != "echo: "+msg {
			t.Errorf("websocket echo = %q, want %q", got, "echo: "+msg)
		}
	}
	if err := ws.Close(websocket.StatusNormalClosure, "done"); err != nil {
		t.Errorf("closing the websocket: %v", err)
	}
}

// echoWebsocket accepts a websocket and echoes every text message.
func echoWebsocket(w http.ResponseWriter, r *http.Request) {
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	defer c.CloseNow()
	for {
		typ, msg, err := c.Read(r.Context())
		if err != nil {
			return
		}
		if err := c.Write(r.Context(), typ, append([]byte("echo: "), msg...)); err != nil {
			return
		}
	}
}

func dialWebsocket(t *testing.T, endpoint string) *websocket.Conn {
	t.Helper()
	ws, resp, err := websocket.Dial(t.Context(), "ws"+strings.TrimPrefix(endpoint, "http"), nil)
	if err != nil {
		t.Fatalf("websocket dial through the balancer: %v", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade status %d, want 101", resp.StatusCode)
	}
	t.Cleanup(func() { ws.CloseNow() })
	return ws
}

func wsRoundTrip(t *testing.T, ws *websocket.Conn, msg string) string {
	t.Helper()
	if err := ws.Write(t.Context(), websocket.MessageText, []byte(msg)); err != nil {
		t.Fatalf("websocket write: %v", err)
	}
	_, got, err := ws.Read(t.Context())
	if err != nil {
		t.Fatalf("websocket read: %v", err)
	}
	return string(got)
}

// sseBackend sends one server-sent event per value received from next and
// ends the stream when next is closed.
func sseBackend(next <-chan string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		for {
			select {
			case v, ok := <-next:
				if !ok {
					return
				}
				fmt.Fprintf(w, "data: %s\n\n", v)
				w.(http.Flusher).Flush()
			case <-r.Context().Done():
				return
			}
		}
	}
}

// readEvent reads one server-sent event's data.
func readEvent(br *bufio.Reader) (string, error) {
	var data string
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return data, err
		}
		line = strings.TrimRight(line, "\n")
		if line == "" {
			return data, nil
		}
		data += strings.TrimPrefix(line, "data: ")
	}
}

func TestProxyServerSentEventsArriveOneByOne(t *testing.T) {
	for name, client := range clients(t) {
		t.Run(name, func(t *testing.T) {
			// A route and a backend of its own: a handler of another
			// client's stream, not yet canceled, must not take its events.
			next := make(chan string)
			_, route, _ := proxyRoute(t, 0, sseBackend(next))
			// Bounds a broken proxy's hang; no assertion depends on it.
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, route.Endpoint+"/events", nil)
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			br := bufio.NewReader(resp.Body)
			// The backend sends an event only once the client has the one
			// before: a proxy that buffered would never deliver the first.
			for i := range 5 {
				want := fmt.Sprintf("event %d", i)
				select {
				case next <- want:
				case <-ctx.Done():
					t.Fatalf("the backend never asked for event %d", i)
				}
				got, err := readEvent(br)
				if err != nil {
					t.Fatalf("reading event %d: %v", i, err)
				}
				if got != want {
					t.Errorf("event %d = %q, want %q", i, got, want)
				}
			}
		})
	}
}

// pattern is an endless reader of a repeating byte pattern, counted.
type pattern struct {
	n, limit int64
	onMiB    func() // called at every 8 MiB read
}

func (p *pattern) Read(b []byte) (int, error) {
	if p.n >= p.limit {
		return 0, io.EOF
	}
	b = b[:min(int64(len(b)), p.limit-p.n)]
	for i := range b {
		b[i] = byte((p.n + int64(i)) % 251)
	}
	before := p.n
	p.n += int64(len(b))
	if p.onMiB != nil && before/(8<<20) != p.n/(8<<20) {
		p.onMiB()
	}
	return len(b), nil
}

func patternSum(n int64) [32]byte {
	h := sha256.New()
	io.Copy(h, &pattern{limit: n})
	return [32]byte(h.Sum(nil))
}

// heapPeak samples the heap in use and keeps the largest sample.
type heapPeak struct {
	mu   sync.Mutex
	base uint64
	peak uint64
}

func newHeapPeak() *heapPeak {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return &heapPeak{base: ms.HeapInuse, peak: ms.HeapInuse}
}

func (h *heapPeak) sample() {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	h.mu.Lock()
	h.peak = max(h.peak, ms.HeapInuse)
	h.mu.Unlock()
}

func (h *heapPeak) growth() uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.peak - h.base
}

func TestProxyStreamsLargeBodies(t *testing.T) {
	const size = 100 << 20
	// Anything near the body's size means it was held; the copies go
	// through buffers of tens of KiB.
	const maxGrowth = 32 << 20
	want := patternSum(size)
	tests := []struct {
		name   string
		upload bool
	}{
		{"a 100 MB upload streams to the target", true},
		{"a 100 MB download streams to the client", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var heap *heapPeak
			gotSum := make(chan [32]byte, 1)
			_, route, _ := proxyRoute(t, 0, func(w http.ResponseWriter, r *http.Request) {
				if tt.upload {
					h := sha256.New()
					_, err := io.Copy(h, r.Body)
					if err != nil {
						http.Error(w, err.Error(), http.StatusBadRequest)
						return
					}
					gotSum <- [32]byte(h.Sum(nil))
					return
				}
				w.Header().Set("Content-Length", fmt.Sprint(size))
				io.Copy(w, &pattern{limit: size, onMiB: heap.sample})
			})
			heap = newHeapPeak()
			var body io.Reader
			if tt.upload {
				body = &pattern{limit: size, onMiB: heap.sample}
			}
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, route.Endpoint+"/big", body)
			req.ContentLength = size
			if !tt.upload {
				req.Method, req.ContentLength = http.MethodGet, 0
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if !tt.upload {
				h := sha256.New()
				if _, err := io.Copy(h, resp.Body); err != nil {
					t.Fatal(err)
				}
				gotSum <- [32]byte(h.Sum(nil))
			}
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d, want 200", resp.StatusCode)
			}
			if got := <-gotSum; got != want {
				t.Error("the body that arrived differs from the one sent")
			}
			if g := heap.growth(); g > maxGrowth {
				t.Errorf("heap in use grew by %d MiB while 100 MiB went through, want at most %d MiB", g>>20, maxGrowth>>20)
			}
		})
	}
}

func TestProxyTrailers(t *testing.T) {
	gotTrailer := make(chan string, 1)
	_, route, _ := proxyRoute(t, 0, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		gotTrailer <- r.Trailer.Get("X-Checksum")
		w.Header().Set("Trailer", "X-Result")
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, "body")
		w.Header().Set("X-Result", "done")
	})
	for name, client := range clients(t) {
		t.Run(name, func(t *testing.T) {
			// A body of unknown length, so that the request can carry a
			// trailer.
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, route.Endpoint+"/upload", io.MultiReader(strings.NewReader("part one "), strings.NewReader("part two")))
			req.ContentLength = -1
			req.Trailer = http.Header{"X-Checksum": {"abc123"}}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			type result struct{ RequestTrailer, Body, ResponseTrailer string }
			want := result{"abc123", "body", "done"}
			got := result{<-gotTrailer, string(body), resp.Trailer.Get("X-Result")}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("trailers both ways (-want +got):\n%s", diff)
			}
		})
	}
}

// countingReader counts the bytes read from it.
type countingReader struct {
	mu sync.Mutex
	r  io.Reader
	n  int
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.mu.Lock()
	c.n += n
	c.mu.Unlock()
	return n, err
}

func (c *countingReader) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

func TestProxyExpectContinue(t *testing.T) {
	_, route, _ := proxyRoute(t, 0, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/reject" {
			http.Error(w, "too large", http.StatusRequestEntityTooLarge)
			return
		}
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "got %d bytes", len(b))
	})
	// The client waits for 100 Continue as long as it takes, so that an
	// unsent body can only mean a final answer came first.
	client := &http.Client{Transport: &http.Transport{ExpectContinueTimeout: time.Hour}}
	defer client.CloseIdleConnections()
	tests := []struct {
		name       string
		path       string
		wantStatus int
		wantBody   string
		wantSent   int
	}{
		{"an accepted body is sent after 100 Continue", "/accept", 200, "got 1024 bytes", 1024},
		{"a rejected body is never sent", "/reject", 413, "too large\n", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := &countingReader{r: bytes.NewReader(make([]byte, 1024))}
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodPut, route.Endpoint+tt.path, body)
			req.ContentLength = 1024
			req.Header.Set("Expect", "100-continue")
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			type result struct {
				Status int
				Body   string
				Sent   int
			}
			if diff := cmp.Diff(result{tt.wantStatus, tt.wantBody, tt.wantSent}, result{resp.StatusCode, string(b), body.count()}); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestProxyClientGoneCancelsTheTarget(t *testing.T) {
	entered, canceled := make(chan struct{}), make(chan struct{})
	_, route, _ := proxyRoute(t, 0, func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-r.Context().Done()
		close(canceled)
	})
	ctx, cancel := context.WithCancel(t.Context())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, route.Endpoint+"/poll", nil)
	errc := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	<-entered
	cancel()
	<-errc
	select {
	case <-canceled:
	case <-t.Context().Done():
		t.Fatal("the target's request was not canceled when the client went away")
	}
}

func TestProxyRetriesAKeptAliveConnectionTheTargetClosed(t *testing.T) {
	// A target that closes every connection after one response without
	// saying so: the next request finds its kept-alive connection closed.
	addr := rawTarget(t, func(c net.Conn, req *http.Request) {
		body := "answer to " + req.URL.Path
		fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	})
	b := newTestBalancer(t, nil)
	route, err := b.EnsureRoute(t.Context(), providers.RouteSpec{App: "web", Process: "web", Port: 8080})
	if err != nil {
		t.Fatal(err)
	}
	b.register([]string{route.Binding.Target}, addr, true)
	var got []string
	for _, path := range []string{"/one", "/two", "/three"} {
		got = append(got, get(route.Endpoint+path))
	}
	// A body cannot be sent twice: a request with one takes no connection
	// that has been idle for long.
	time.Sleep(upstreamIdleForBody + 100*time.Millisecond)
	resp, err := http.Post(route.Endpoint+"/four", "text/plain", strings.NewReader("payload"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	got = append(got, string(body))
	if diff := cmp.Diff([]string{"answer to /one", "answer to /two", "answer to /three", "answer to /four"}, got); diff != "" {
		t.Errorf("responses (-want +got):\n%s", diff)
	}
}

func TestSnapshotPickDoesNotAllocate(t *testing.T) {
	var rr1, rr2 atomic.Uint64
	s := &snapshot{total: 100, sets: []snapSet{
		{weight: 90, rr: &rr1, targets: []*target{{addr: "a"}, {addr: "b"}}},
		{weight: 10, rr: &rr2, targets: []*target{{addr: "c"}}},
	}}
	n := uint64(0)
	if allocs := testing.AllocsPerRun(1000, func() { n++; s.pick(n) }); allocs != 0 {
		t.Errorf("pick allocates %v times per call, want 0", allocs)
	}
}

// rawTarget serves every connection with answer, after reading one
// request, and closes it.
func rawTarget(t *testing.T, answer func(c net.Conn, req *http.Request)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				req, err := http.ReadRequest(bufio.NewReader(c))
				if err != nil {
					return
				}
				answer(c, req)
			}()
		}
	}()
	return ln.Addr().String()
}

func TestProxyRefusesAnOversizedResponseHeader(t *testing.T) {
	// The target keeps the connection open after 2 MiB of one header
	// line: only a limit ends the wait.
	done := make(chan struct{})
	t.Cleanup(func() { close(done) })
	addr := rawTarget(t, func(c net.Conn, _ *http.Request) {
		io.WriteString(c, "HTTP/1.1 200 OK\r\nX-Big: ")
		chunk := bytes.Repeat([]byte("a"), 64<<10)
		for range 32 {
			if _, err := c.Write(chunk); err != nil {
				return
			}
		}
		<-done
	})
	b := newTestBalancer(t, nil)
	route, err := b.EnsureRoute(t.Context(), providers.RouteSpec{App: "web", Process: "web", Port: 8080})
	if err != nil {
		t.Fatal(err)
	}
	b.register([]string{route.Binding.Target}, addr, true)
	if got := get(route.Endpoint); got != "status 502: " {
		t.Errorf("a response header of 2 MiB answered %q, want status 502", got)
	}
}
