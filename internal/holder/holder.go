// Package holder identifies the process that holds a lease well enough
// for another process on the same host to prove that it is gone: its host
// name, process id, the kernel's start time of the process, the boot it
// runs in and its PID namespace (where the OS reports them).
package holder

import (
	"os"
	"sync"
)

// ID identifies a process. Fields the OS does not report are empty.
type ID struct {
	Host string `json:"host"`
	PID  int    `json:"pid"`
	// Start is the process's start time in clock ticks since boot.
	Start uint64 `json:"start,omitempty"`
	// Boot identifies the boot of the host the process runs in.
	Boot string `json:"boot,omitempty"`
	// PIDNS identifies the PID namespace the PID belongs to.
	PIDNS string `json:"pidns,omitempty"`
}

// Self returns the ID of the calling process. It is read from the OS once
// per process (a few files under /proc): none of it changes while the
// process runs, and every deploy's lease names its holder.
func Self() ID { return selfID() }

var selfID = sync.OnceValue(func() ID {
	host, _ := os.Hostname()
	id := ID{Host: host, PID: os.Getpid()}
	id.Start, id.Boot, id.PIDNS = self(id.PID)
	return id
})

// Gone reports whether the process id names has provably ended, as seen
// from the calling process: it ran in this very boot of this host (same
// host name, same boot ID where the OS reports one, same PID namespace)
// and no live process has its PID, or the process with its PID started at
// another time. A process of another host, of another boot (which cannot
// be told from another host of the same name), or one this process cannot
// see, is never reported gone: its lease lasts until its TTL.
func (id ID) Gone() bool {
	me := Self()
	if id.PID <= 0 || id.Host == "" || id.Host != me.Host || id.Boot != me.Boot || id.PIDNS != me.PIDNS {
		return false
	}
	return gone(id.PID, id.Start)
}
