// Package holder identifies the process that holds a lease well enough
// for another process on the same host to prove that it is gone: its host
// name, process id, the kernel's start time of the process, the boot it
// runs in and its PID namespace (where the OS reports them).
package holder

import "os"

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

// Self returns the ID of the calling process.
func Self() ID {
	host, _ := os.Hostname()
	id := ID{Host: host, PID: os.Getpid()}
	id.Start, id.Boot, id.PIDNS = self(id.PID)
	return id
}

// Gone reports whether the process id names has provably ended, as seen
// from the calling process: it ran on this host (same host name, same PID
// namespace) and either the host has booted since, or no live process has
// its PID, or the process with its PID started at another time. A process
// on another host, or one this one cannot see, is never reported gone.
func (id ID) Gone() bool {
	me := Self()
	if id.PID <= 0 || id.Host == "" || id.Host != me.Host || id.PIDNS != me.PIDNS {
		return false
	}
	if id.Boot != "" && me.Boot != "" && id.Boot != me.Boot {
		return true
	}
	return gone(id.PID, id.Start)
}
