package local

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The balancer's hot path forwards a request over a kept-alive HTTP/1.1
// connection of its own (proxy_upstream.go) on the handler's goroutine:
// the request line and headers are written straight into the connection's
// buffer, the response is read back with http.ReadResponse, and bodies are
// copied through pooled buffers. Against httputil.ReverseProxy over an
// http.Transport this saves the transport's two goroutines per connection
// and their hand-offs, the clone of every request and a 32 KiB buffer per
// response. Upgrades (websockets) and Expect: 100-continue take
// httputil.ReverseProxy instead, over connections of the same target.
//
// HTTP semantics kept: hop-by-hop headers (and those the Connection header
// names) are dropped both ways, X-Forwarded-For/-Host/-Proto are set (those
// the client sent are replaced, as httputil.ReverseProxy's Rewrite does),
// "TE: trailers" is passed on, request and response trailers are relayed,
// 1xx informational responses are passed on, bodies of unknown length
// (server-sent events, streams) are flushed as they arrive, and a client
// that goes away cancels the upstream exchange.

// copyBufSize is the size of the pooled buffers bodies are copied through.
const copyBufSize = 32 << 10

// maxInformational bounds the 1xx responses passed on for one request.
const maxInformational = 5

var copyBufs = sync.Pool{New: func() any { b := make([]byte, copyBufSize); return &b }}

// bufferPool lends the pooled copy buffers to httputil.ReverseProxy.
type bufferPool struct{}

func (bufferPool) Get() []byte  { return *copyBufs.Get().(*[]byte) }
func (bufferPool) Put(b []byte) { copyBufs.Put(&b) }

// isHopHeader reports whether a canonical header key is hop-by-hop
// (RFC 9110 section 7.6.1, and the older ones proxies still see).
func isHopHeader(k string) bool {
	switch k {
	case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
		"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade":
		return true
	}
	return false
}

// isForwardedHeader reports whether a canonical header key is one the
// balancer sets itself.
func isForwardedHeader(k string) bool {
	switch k {
	case "Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto":
		return true
	}
	return false
}

// connTokens reports whether a Connection header names headers other than
// the common "keep-alive" and "close" (which are hop-by-hop anyway).
func connTokens(conn []string) bool {
	for _, v := range conn {
		for v != "" {
			var tok string
			tok, v, _ = strings.Cut(v, ",")
			tok = strings.TrimSpace(tok)
			if tok != "" && !strings.EqualFold(tok, "keep-alive") && !strings.EqualFold(tok, "close") {
				return true
			}
		}
	}
	return false
}

// connListed reports whether the Connection header names key.
func connListed(conn []string, key string) bool {
	for _, v := range conn {
		for v != "" {
			var tok string
			tok, v, _ = strings.Cut(v, ",")
			if strings.EqualFold(strings.TrimSpace(tok), key) {
				return true
			}
		}
	}
	return false
}

// hasToken reports whether a comma-separated header has the token.
func hasToken(vs []string, token string) bool {
	for _, v := range vs {
		for v != "" {
			var tok string
			tok, v, _ = strings.Cut(v, ",")
			tok, _, _ = strings.Cut(tok, ";")
			if strings.EqualFold(strings.TrimSpace(tok), token) {
				return true
			}
		}
	}
	return false
}

// needsReverseProxy reports whether a request takes httputil.ReverseProxy:
// a protocol upgrade or an Expect: 100-continue, whose exchanges its
// transport runs.
func needsReverseProxy(req *http.Request) bool {
	return len(req.Header["Expect"]) > 0 || (len(req.Header["Upgrade"]) > 0 && hasToken(req.Header["Connection"], "upgrade"))
}

// forward serves one request through the target.
func (t *target) forward(w http.ResponseWriter, req *http.Request) {
	if needsReverseProxy(req) {
		t.proxy.ServeHTTP(w, req)
		return
	}
	maxIdle := upstreamIdleTimeout
	if hasBody(req) {
		maxIdle = upstreamIdleForBody
	}
	err := t.exchange(w, req, maxIdle)
	if err != nil && t.retryable(err, req) {
		err = t.exchange(w, req, 0)
	}
	if err == nil {
		return
	}
	var started startedError
	if errors.As(err, &started) {
		if req.Context().Err() == nil {
			t.log.Debug("proxy error after the response started", "target", t.addr, "err", err)
		}
		panic(http.ErrAbortHandler)
	}
	t.log.Debug("proxy error", "target", t.addr, "err", err)
	w.WriteHeader(http.StatusBadGateway)
}

// startedError wraps an error that happened once the response had begun.
type startedError struct{ err error }

func (e startedError) Error() string { return e.err.Error() }
func (e startedError) Unwrap() error { return e.err }

// reusedConnError marks the failure of a kept-alive connection before any
// byte of the response: the target closed it while it was idle.
type reusedConnError struct{ err error }

func (e reusedConnError) Error() string { return e.err.Error() }
func (e reusedConnError) Unwrap() error { return e.err }

// retryable reports whether a failed exchange may be tried again on a new
// connection: it failed on a kept-alive connection before the response
// began, and the request has no body that was consumed.
func (t *target) retryable(err error, req *http.Request) bool {
	var re reusedConnError
	return errors.As(err, &re) && !hasBody(req) && req.Context().Err() == nil
}

func hasBody(req *http.Request) bool {
	return req.Body != nil && req.Body != http.NoBody && req.ContentLength != 0
}

// exchange sends req to the target over one connection and copies the
// response to w. It takes a connection idle for less than maxIdle, or
// dials a new one (always, with maxIdle 0).
func (t *target) exchange(w http.ResponseWriter, req *http.Request, maxIdle time.Duration) (err error) {
	ctx := req.Context()
	c, err := t.up.get(ctx, maxIdle)
	if err != nil {
		return err
	}
	// A client that goes away ends the exchange: closing the connection
	// unblocks whatever waits on it.
	stop := context.AfterFunc(ctx, func() { c.Conn.Close() })
	body := hasBody(req)
	chunked := body && req.ContentLength < 0
	var wrote chan error // the body writer's result, when there is a body
	bodyDone := false
	reuse := false
	defer func() {
		if wrote != nil && !bodyDone {
			// Nothing may read the request's body once the handler is
			// done: stop the writer and wait for it.
			c.Conn.Close()
			<-wrote
			reuse = false
		}
		if stop() && reuse {
			t.up.put(c)
		} else {
			c.Close()
		}
	}()

	if err := writeRequestHead(c.bw, req, t.addr, chunked); err != nil {
		return t.early(c, err)
	}
	if body {
		// The head goes at once: a client may wait for the response's
		// head before it sends its body.
		if err := c.bw.Flush(); err != nil {
			return t.early(c, err)
		}
		wrote = make(chan error, 1)
		go func() {
			err := writeBody(c.bw, req, chunked)
			if err != nil {
				// The target waits for the rest of the body: stop it.
				c.Conn.Close()
			}
			wrote <- err
		}()
	} else if err := c.bw.Flush(); err != nil {
		return t.early(c, err)
	}

	// The first byte tells a kept-alive connection the target closed
	// (nothing at all arrives) from a failure within a response.
	c.limit = maxResponseHeaderBytes
	if _, err := c.br.Peek(1); err != nil {
		c.limit = 0
		return t.early(c, err)
	}
	var resp *http.Response
	for informational := 0; ; informational++ {
		resp, err = http.ReadResponse(c.br, req)
		if err != nil {
			return err
		}
		if resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			break
		}
		if informational == maxInformational {
			return errors.New("too many 1xx responses")
		}
		if resp.StatusCode != http.StatusContinue {
			h := w.Header()
			copyResponseHeader(h, resp.Header)
			w.WriteHeader(resp.StatusCode)
			clear(h)
		}
	}
	c.limit = 0 // the body is bounded by its framing, or streams
	if resp.StatusCode == http.StatusSwitchingProtocols {
		return errors.New("the target switched protocols without being asked")
	}

	h := w.Header()
	copyResponseHeader(h, resp.Header)
	if len(resp.Trailer) > 0 {
		keys := make([]string, 0, len(resp.Trailer))
		for k := range resp.Trailer {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		h["Trailer"] = []string{strings.Join(keys, ", ")}
	}
	w.WriteHeader(resp.StatusCode)
	// Bodies of unknown length are streams (server-sent events, chunked
	// progress): the header and every piece go to the client as they
	// arrive.
	stream := resp.ContentLength < 0
	if stream {
		if fl, ok := w.(http.Flusher); ok {
			fl.Flush()
		}
	}
	if err := copyBody(w, resp.Body, stream); err != nil {
		return startedError{err}
	}
	for k, vs := range resp.Trailer {
		h[http.TrailerPrefix+k] = vs
	}
	resp.Body.Close()
	if wrote != nil {
		select {
		case err := <-wrote:
			bodyDone = true
			if err != nil {
				return nil // the response was whole; only the connection is lost
			}
		default:
			// The target answered without reading the whole body: the
			// connection cannot carry another request.
			return nil
		}
	}
	reuse = !resp.Close
	return nil
}

// early classifies a failure before any byte of the response.
func (t *target) early(c *upConn, err error) error {
	if c.reused && (errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)) {
		return reusedConnError{err}
	}
	return err
}

// writeRequestHead writes the request line and headers of req for the
// target into bw.
func writeRequestHead(bw *bufio.Writer, req *http.Request, addr string, chunked bool) error {
	bw.WriteString(req.Method)
	bw.WriteByte(' ')
	if uri := req.RequestURI; strings.HasPrefix(uri, "/") {
		bw.WriteString(uri)
	} else {
		bw.WriteString(req.URL.RequestURI())
	}
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	host := req.Host
	if host == "" {
		host = addr
	}
	bw.WriteString(host)
	bw.WriteString("\r\n")
	conn := req.Header["Connection"]
	listed := connTokens(conn)
	for k, vs := range req.Header {
		if isHopHeader(k) || isForwardedHeader(k) || k == "Content-Length" || (listed && connListed(conn, k)) {
			continue
		}
		for _, v := range vs {
			writeHeaderLine(bw, k, v)
		}
	}
	if hasToken(req.Header["Te"], "trailers") {
		bw.WriteString("Te: trailers\r\n")
	}
	if ip, _, err := net.SplitHostPort(req.RemoteAddr); err == nil {
		writeHeaderLine(bw, "X-Forwarded-For", ip)
	}
	writeHeaderLine(bw, "X-Forwarded-Host", req.Host)
	bw.WriteString("X-Forwarded-Proto: http\r\n")
	switch {
	case chunked:
		bw.WriteString("Transfer-Encoding: chunked\r\n")
		if len(req.Trailer) > 0 {
			keys := make([]string, 0, len(req.Trailer))
			for k := range req.Trailer {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			writeHeaderLine(bw, "Trailer", strings.Join(keys, ", "))
		}
	case req.ContentLength > 0:
		var num [20]byte
		bw.WriteString("Content-Length: ")
		bw.Write(strconv.AppendInt(num[:0], req.ContentLength, 10))
		bw.WriteString("\r\n")
	case req.Method == http.MethodPost || req.Method == http.MethodPut || req.Method == http.MethodPatch:
		bw.WriteString("Content-Length: 0\r\n")
	}
	_, err := bw.WriteString("\r\n")
	return err
}

func writeHeaderLine(bw *bufio.Writer, k, v string) {
	bw.WriteString(k)
	bw.WriteString(": ")
	bw.WriteString(v)
	bw.WriteString("\r\n")
}

// writeBody copies the request's body to the target, flushing every piece
// so that a streamed upload reaches it as it comes; a chunked body ends
// with the request's trailers.
func writeBody(bw *bufio.Writer, req *http.Request, chunked bool) error {
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	buf := *bp
	var n int64
	for {
		m, rerr := req.Body.Read(buf)
		if m > 0 {
			n += int64(m)
			if chunked {
				var num [16]byte
				bw.Write(strconv.AppendInt(num[:0], int64(m), 16))
				bw.WriteString("\r\n")
			}
			bw.Write(buf[:m])
			if chunked {
				bw.WriteString("\r\n")
			}
			if err := bw.Flush(); err != nil {
				return err
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return rerr
		}
	}
	if !chunked {
		if n != req.ContentLength {
			return io.ErrUnexpectedEOF
		}
		return nil
	}
	bw.WriteString("0\r\n")
	for k, vs := range req.Trailer {
		for _, v := range vs {
			writeHeaderLine(bw, k, v)
		}
	}
	bw.WriteString("\r\n")
	return bw.Flush()
}

// copyResponseHeader copies a response's end-to-end headers to h.
func copyResponseHeader(h, from http.Header) {
	conn := from["Connection"]
	listed := connTokens(conn)
	for k, vs := range from {
		if isHopHeader(k) || (listed && connListed(conn, k)) {
			continue
		}
		h[k] = vs
	}
}

// copyBody copies a response body to the client through a pooled buffer,
// flushing every piece when stream is set.
func copyBody(w http.ResponseWriter, body io.Reader, stream bool) error {
	var fl http.Flusher
	if stream {
		fl, _ = w.(http.Flusher)
	}
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	buf := *bp
	for {
		n, rerr := body.Read(buf)
		if n > 0 {
			if _, err := w.Write(buf[:n]); err != nil {
				return err
			}
			if fl != nil {
				fl.Flush()
			}
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return rerr
		}
	}
}
