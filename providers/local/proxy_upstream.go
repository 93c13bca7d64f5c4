package local

import (
	"bufio"
	"context"
	"errors"
	"net"
	"sync"
	"time"
)

// Upstream connection limits of one target.
const (
	// maxIdlePerTarget bounds the kept-alive connections of one target
	// waiting for a request; more are closed when they come back.
	maxIdlePerTarget = 256
	// upstreamDialTimeout bounds a connection attempt to a target.
	upstreamDialTimeout = 5 * time.Second
	// upstreamIdleTimeout closes a kept-alive connection unused this long
	// (checked when it is taken, so an idle pool costs no timer).
	upstreamIdleTimeout = 90 * time.Second
	// upstreamIdleForBody is the longest a kept-alive connection may have
	// been idle to carry a request with a body. A request without one is
	// sent again on a new connection when the target closed the idle one
	// (as servers do after a few seconds, Node's after 5); a body cannot be
	// read twice, so it only takes a connection that was busy just now.
	upstreamIdleForBody = time.Second
	// upstreamBufSize is the size of the read and write buffers of an
	// upstream connection: large enough for a response's header block.
	upstreamBufSize = 16 << 10
	// maxResponseHeaderBytes bounds the status line and headers of a
	// target's response (as net/http's server bounds a request's).
	maxResponseHeaderBytes = 1 << 20
)

// errResponseHeaderTooLarge is the error of a response whose header block
// passes maxResponseHeaderBytes.
var errResponseHeaderTooLarge = errors.New("the target's response header is larger than 1 MiB")

// errUpstreamClosed is the error of a dial to a target whose connections
// were cut (its drain ended).
var errUpstreamClosed = errors.New("the target's connections were closed")

// upstream is the set of connections of one target: those idle in its
// pool and those serving a request, each known so that the end of a drain
// can close them all at once (websocket tunnels and streams included).
type upstream struct {
	addr   string
	dialer net.Dialer

	mu     sync.Mutex
	idle   []*upConn            // kept-alive, most recently used last
	conns  map[*upConn]struct{} // every open connection, idle or busy
	closed bool
}

func newUpstream(addr string) *upstream {
	return &upstream{
		addr:   addr,
		dialer: net.Dialer{Timeout: upstreamDialTimeout, KeepAlive: 30 * time.Second},
		conns:  map[*upConn]struct{}{},
	}
}

// upConn is one connection to a target.
type upConn struct {
	net.Conn
	u      *upstream
	br     *bufio.Reader // nil on a connection made for httputil's transport
	bw     *bufio.Writer
	idleAt time.Time
	reused bool // served a request before
	// limit, when positive, is how many more bytes may be read before
	// reads fail: set while a response's header block is read.
	limit int
}

// Read reads from the connection within the limit, if one is set.
func (c *upConn) Read(b []byte) (int, error) {
	if c.limit == 0 {
		return c.Conn.Read(b)
	}
	if c.limit < 0 {
		return 0, errResponseHeaderTooLarge
	}
	if len(b) > c.limit {
		b = b[:c.limit]
	}
	n, err := c.Conn.Read(b)
	c.limit -= n
	if c.limit == 0 {
		c.limit = -1
	}
	return n, err
}

// Close closes the connection and forgets it.
func (c *upConn) Close() error {
	c.u.mu.Lock()
	delete(c.u.conns, c)
	c.u.mu.Unlock()
	return c.Conn.Close()
}

// get returns a connection kept alive for less than maxIdle, closing
// older ones, or dials a new one (always, with maxIdle 0).
func (u *upstream) get(ctx context.Context, maxIdle time.Duration) (*upConn, error) {
	now := time.Now()
	u.mu.Lock()
	for maxIdle > 0 && len(u.idle) > 0 {
		c := u.idle[len(u.idle)-1]
		u.idle[len(u.idle)-1] = nil
		u.idle = u.idle[:len(u.idle)-1]
		if now.Sub(c.idleAt) < maxIdle {
			u.mu.Unlock()
			return c, nil
		}
		delete(u.conns, c)
		c.Conn.Close()
	}
	u.mu.Unlock()
	c, err := u.dial(ctx)
	if err != nil {
		return nil, err
	}
	c.br = bufio.NewReaderSize(c, upstreamBufSize)
	c.bw = bufio.NewWriterSize(c.Conn, upstreamBufSize)
	return c, nil
}

// dial opens a new connection to the target and registers it.
func (u *upstream) dial(ctx context.Context) (*upConn, error) {
	nc, err := u.dialer.DialContext(ctx, "tcp", u.addr)
	if err != nil {
		return nil, err
	}
	c := &upConn{Conn: nc, u: u}
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.closed {
		nc.Close()
		return nil, errUpstreamClosed
	}
	u.conns[c] = struct{}{}
	return c, nil
}

// dialContext dials for httputil's transport (the upgrade path), so that
// its connections are cut with the others.
func (u *upstream) dialContext(ctx context.Context, _, _ string) (net.Conn, error) {
	return u.dial(ctx)
}

// put returns a connection whose exchange completed to the pool.
func (u *upstream) put(c *upConn) {
	c.idleAt = time.Now()
	c.reused = true
	u.mu.Lock()
	if u.closed || len(u.idle) >= maxIdlePerTarget {
		u.mu.Unlock()
		c.Close()
		return
	}
	u.idle = append(u.idle, c)
	u.mu.Unlock()
}

// closeAll closes every connection of the target, busy ones included: the
// end of a drain. With refuse, later dials fail too (the target is gone
// for good).
func (u *upstream) closeAll(refuse bool) {
	u.mu.Lock()
	u.closed = u.closed || refuse
	conns := make([]*upConn, 0, len(u.conns))
	for c := range u.conns {
		conns = append(conns, c)
	}
	clear(u.conns)
	u.idle = nil
	u.mu.Unlock()
	for _, c := range conns {
		c.Conn.Close()
	}
}
