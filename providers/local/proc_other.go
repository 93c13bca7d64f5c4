//go:build unix && !linux

package local

import (
	"syscall"
	"time"
)

// procAttr puts a process in its own process group.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}

func procStartTime(int) uint64 { return 0 }

// killStale kills a recorded process group whose leader still exists.
func killStale(pid int, _ uint64) {
	if syscall.Kill(pid, 0) == nil {
		syscall.Kill(-pid, syscall.SIGKILL)
		waitGone(pid, 5*time.Second)
	}
}

// ephemeralPorts returns the usual ephemeral port range of the BSDs and
// macOS.
func ephemeralPorts() (int, int) { return 49152, 65535 }
