package holder

import (
	"os"
	"os/exec"
	"testing"
)

// TestGone checks which holders are provably gone: only a process of this
// boot of this host, in this PID namespace, that is no longer there or is
// another process now.
func TestGone(t *testing.T) {
	me := Self()
	if me.PID != os.Getpid() || me.Host == "" {
		t.Fatalf("Self() = %+v", me)
	}
	// A process that has exited and been reaped.
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Skipf("cannot run a child process: %v", err)
	}
	exited := me
	exited.PID, exited.Start = cmd.Process.Pid, me.Start
	with := func(f func(*ID)) ID { id := me; f(&id); return id }
	tests := []struct {
		name string
		id   ID
		want bool
	}{
		{"the calling process is not gone", me, false},
		{"a process of another host is not gone", with(func(id *ID) { id.Host += "-other"; id.PID = cmd.Process.Pid }), false},
		{"a process of another PID namespace is not gone", with(func(id *ID) { id.PIDNS += "-other"; id.PID = cmd.Process.Pid }), false},
		{"a holder without a PID is not gone", with(func(id *ID) { id.PID = 0 }), false},
		{"an exited process is gone", exited, true},
	}
	if me.Start != 0 {
		tests = append(tests, struct {
			name string
			id   ID
			want bool
		}{"a live PID with another start time is gone", with(func(id *ID) { id.Start++ }), true})
	}
	if me.Boot != "" {
		tests = append(tests, struct {
			name string
			id   ID
			want bool
		}{"a process of another boot, or of another host of the same name, is not gone", with(func(id *ID) { id.Boot += "-other"; id.PID = cmd.Process.Pid }), false})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.id.Gone(); got != tt.want {
				t.Errorf("%+v.Gone() = %v, want %v", tt.id, got, tt.want)
			}
		})
	}
}
