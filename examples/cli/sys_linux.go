//go:build linux

package main

import (
	"errors"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"
)

// socketSupported is true where the holder can check who connects to its
// socket: on Linux, with SO_PEERCRED.
const socketSupported = true

// peerUID returns the user ID of the process at the other end of a Unix
// socket connection, as the kernel recorded it when the peer connected.
func peerUID(conn net.Conn) (int, error) {
	uc, ok := conn.(*net.UnixConn)
	if !ok {
		return 0, errors.New("not a Unix socket connection")
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return 0, err
	}
	var cred *syscall.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil {
		return 0, err
	}
	if credErr != nil {
		return 0, credErr
	}
	return int(cred.Uid), nil
}

// processInfo returns the name of the program a process runs and when it
// started, from /proc: the start is field 22 of /proc/PID/stat, in clock
// ticks (USER_HZ, 100 on Linux) after the boot time of /proc/stat.
func processInfo(pid int) (name string, started time.Time, ok bool) {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return "", time.Time{}, false
	}
	open, close := strings.IndexByte(string(stat), '('), strings.LastIndexByte(string(stat), ')')
	if open < 0 || close < open {
		return "", time.Time{}, false
	}
	name = string(stat[open+1 : close])
	fields := strings.Fields(string(stat[close+1:])) // fields 3 and on
	if len(fields) < 20 {
		return "", time.Time{}, false
	}
	ticks, err := strconv.ParseInt(fields[19], 10, 64)
	if err != nil {
		return "", time.Time{}, false
	}
	boot, err := os.ReadFile("/proc/stat")
	if err != nil {
		return "", time.Time{}, false
	}
	for line := range strings.Lines(string(boot)) {
		if v, found := strings.CutPrefix(line, "btime "); found {
			secs, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				break
			}
			const userHZ = 100
			return name, time.Unix(secs, 0).Add(time.Duration(ticks) * time.Second / userHZ), true
		}
	}
	return "", time.Time{}, false
}

// isTerminal reports whether f is a terminal: whether the terminal ioctl
// TCGETS succeeds on it (a character device such as /dev/null is not one).
func isTerminal(f *os.File) bool {
	var t syscall.Termios
	_, _, errno := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), syscall.TCGETS, uintptr(unsafe.Pointer(&t)))
	return errno == 0
}
