//go:build !linux

package main

import (
	"errors"
	"net"
	"os"
	"time"
)

// socketSupported is false where the holder cannot check who connects to
// its socket: no socket is made, and commands wait for the rack instead
// of running inside the process holding it.
const socketSupported = false

// peerUID is not available on this system.
func peerUID(net.Conn) (int, error) { return 0, errors.ErrUnsupported }

// processInfo is not available on this system.
func processInfo(int) (string, time.Time, bool) { return "", time.Time{}, false }

// isTerminal reports whether f is a character device, the nearest this
// system offers without a terminal library (/dev/null counts as one).
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
