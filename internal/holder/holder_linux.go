package holder

import (
	"os"
	"strconv"
	"strings"
)

func self(pid int) (start uint64, boot, pidns string) {
	start, _, _ = stat(pid)
	if b, err := os.ReadFile("/proc/sys/kernel/random/boot_id"); err == nil {
		boot = strings.TrimSpace(string(b))
	}
	pidns, _ = os.Readlink("/proc/self/ns/pid")
	return start, boot, pidns
}

// stat returns a process's start time and whether it is a zombie (or
// dead), from /proc; ok is false when no process has the PID.
func stat(pid int) (start uint64, zombie, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false, false
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, false, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return 0, false, false
	}
	start, _ = strconv.ParseUint(f[19], 10, 64)
	return start, f[0] == "Z" || f[0] == "X", true
}

func gone(pid int, start uint64) bool {
	s, zombie, ok := stat(pid)
	return !ok || zombie || start != 0 && s != start
}
