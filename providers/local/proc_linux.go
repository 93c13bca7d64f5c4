package local

import (
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// procAttr puts a process in its own group and kills it if the rack's
// process dies without stopping it.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// procStat returns a process's group and start time from /proc.
func procStat(pid int) (pgrp int, start uint64, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, false
	}
	// Fields after the parenthesized command name: state is field 3.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return 0, 0, false
	}
	pgrp, _ = strconv.Atoi(f[2])
	start, _ = strconv.ParseUint(f[19], 10, 64)
	return pgrp, start, true
}

func procStartTime(pid int) uint64 {
	_, start, _ := procStat(pid)
	return start
}

// killStale kills what is left of a recorded process group: the leader if
// it is still the same process (same start time), and every process of
// its group started after it.
func killStale(pid int, start uint64) {
	if _, s, ok := procStat(pid); ok && (start == 0 || s == start) {
		syscall.Kill(-pid, syscall.SIGKILL)
		waitGone(pid, 5*time.Second)
		return
	}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		other, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if pg, s, ok := procStat(other); ok && pg == pid && s >= start {
			syscall.Kill(other, syscall.SIGKILL)
		}
	}
}

// ephemeralPorts returns the OS's ephemeral port range.
func ephemeralPorts() (int, int) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			lo, err1 := strconv.Atoi(f[0])
			hi, err2 := strconv.Atoi(f[1])
			if err1 == nil && err2 == nil && lo > 0 && lo <= hi {
				return lo, hi
			}
		}
	}
	return 32768, 60999
}
