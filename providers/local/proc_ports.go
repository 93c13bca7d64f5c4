package local

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"syscall"

	"github.com/convox-go/convox/providers"
)

// Task ports come from a range below the OS's ephemeral port range: the
// ports the OS hands to listeners on port 0 and to outgoing connections
// (every other program's, and this rack's own balancers and registry) are
// never picked, so between the check that a port is free and the task
// binding it only a program binding that very port could take it. The
// allocator also never hands out a port a live task of the rack holds.
// When a task still exits within its health grace window and its port is
// then held by another process, the start is not held against the app:
// the slot starts again at once on a new port (see Scheduler.supervise).
const (
	taskPortLow = 20000 // the lowest port a task gets
	minPortSpan = 1024  // a range narrower than this falls back to port 0
	portTries   = 64
)

// portAllocator hands out free ports on 127.0.0.1 to tasks.
type portAllocator struct {
	lo, hi int // the range, inclusive; lo 0: ask the OS
	mu     sync.Mutex
	inUse  map[int]bool
	// handedOut, when set, is called with each port get returns (tests
	// take the port there, as another program racing the task would).
	handedOut func(port int)
}

func newPortAllocator() *portAllocator {
	a := &portAllocator{inUse: map[int]bool{}}
	eLo, eHi := ephemeralPorts()
	switch {
	case eLo-taskPortLow >= minPortSpan:
		a.lo, a.hi = taskPortLow, eLo-1
	case 65535-eHi >= minPortSpan:
		a.lo, a.hi = eHi+1, 65535
	}
	return a
}

// get returns a port free at the time of the call and reserved for the
// caller until put.
func (a *portAllocator) get() (int, error) {
	if a.lo > 0 {
		for range portTries {
			p := a.lo + rand.IntN(a.hi-a.lo+1)
			a.mu.Lock()
			taken := a.inUse[p]
			if !taken {
				a.inUse[p] = true
			}
			a.mu.Unlock()
			if taken {
				continue
			}
			if portFree(p) {
				a.handOut(p)
				return p, nil
			}
			a.put(p)
		}
	}
	for range portTries {
		p, err := freePort()
		if err != nil {
			return 0, err
		}
		a.mu.Lock()
		taken := a.inUse[p]
		a.inUse[p] = true
		a.mu.Unlock()
		if !taken {
			a.handOut(p)
			return p, nil
		}
	}
	return 0, fmt.Errorf("allocate a port: every port tried is held by a task of the rack: %w", providers.ErrUnavailable)
}

func (a *portAllocator) handOut(p int) {
	a.mu.Lock()
	f := a.handedOut
	a.mu.Unlock()
	if f != nil {
		f(p)
	}
}

// put gives a port back.
func (a *portAllocator) put(p int) {
	a.mu.Lock()
	delete(a.inUse, p)
	a.mu.Unlock()
}

// portFree reports whether a listener can bind 127.0.0.1:p now.
func portFree(p int) bool {
	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
	if err != nil {
		return false
	}
	ln.Close()
	return true
}

// portTakenByOther reports whether another process holds 127.0.0.1:p, as
// seen from binding it.
func portTakenByOther(p int) bool {
	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
	if err != nil {
		return errors.Is(err, syscall.EADDRINUSE)
	}
	ln.Close()
	return false
}

// freePort asks the OS for a free port on 127.0.0.1 (an ephemeral one).
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("allocate a port: %w: %w", providers.ErrUnavailable, err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
