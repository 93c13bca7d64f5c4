package local

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/convox-go/convox/providers"
)

// TestCorruptStateIsLoud corrupts one state file of a closed rack and
// reopens it: each corruption is either an error naming the file, or,
// where the rack rightly serves on, an error in the rack's log naming the
// file and a visible consequence; never silence.
func TestCorruptStateIsLoud(t *testing.T) {
	const garbage = "{not json"
	tests := []struct {
		name    string
		file    string // relative to the rack directory
		content string
		// wantOpenErr, when set, is what Open fails with (ErrInvalid).
		wantOpenErr bool
		// check runs on the reopened rack.
		check func(t *testing.T, r *Rack, file string)
	}{
		{
			name: "a corrupt app state makes the app's Status an error naming the file, until a deploy replaces it",
			file: "scheduler/apps/web.json", content: garbage,
			check: func(t *testing.T, r *Rack, file string) {
				s := r.Scheduler()
				_, err := s.Status(context.Background(), "web")
				if !errors.Is(err, providers.ErrInvalid) || !strings.Contains(err.Error(), file) {
					t.Fatalf("Status of the corrupt app = %v, want ErrInvalid naming %s", err, file)
				}
				if _, err := s.Status(context.Background(), "other"); err != nil {
					t.Errorf("Status of an intact app: %v", err)
				}
				m, err := s.StatusMany(context.Background(), []string{"web", "other"})
				if err != nil || len(m) != 1 {
					t.Errorf("StatusMany = %d apps, %v; want the intact app only", len(m), err)
				}
				apply(t, s, providers.Desired{App: "web", Release: "R9", Token: "R9"})
				if st, err := s.Status(context.Background(), "web"); err != nil || st.Release != "R9" {
					t.Errorf("Status after a deploy = %q, %v; want R9", st.Release, err)
				}
				if b, err := os.ReadFile(file + ".corrupt"); err != nil || string(b) != garbage {
					t.Errorf("the corrupt file kept as .corrupt: %q, %v", b, err)
				}
			},
		},
		{
			name: "an app state holding another app is corrupt",
			file: "scheduler/apps/web.json", content: `{"app":"other","seq":1,"rollouts":[]}`,
			check: func(t *testing.T, r *Rack, file string) {
				_, err := r.Scheduler().Status(context.Background(), "web")
				if !errors.Is(err, providers.ErrInvalid) || !strings.Contains(err.Error(), file) {
					t.Fatalf("Status = %v, want ErrInvalid naming %s", err, file)
				}
			},
		},
		{
			name: "a corrupt task pid file is logged as an error naming the file",
			file: "scheduler/tasks/web-1234567890.json", content: garbage,
		},
		{
			name: "a corrupt rack state is logged as an error naming the file, and the registry serves on",
			file: "rack.json", content: garbage,
			check: func(t *testing.T, r *Rack, file string) {
				if r.Registry().Host() == "" {
					t.Error("the registry has no address")
				}
			},
		},
		{
			name: "a corrupt routes file fails Open with an error naming the file",
			file: "balancer/routes.json", content: garbage, wantOpenErr: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			r, err := Open(dir, testOptions())
			if err != nil {
				t.Fatal(err)
			}
			for _, app := range []string{"web", "other"} {
				apply(t, r.Scheduler(), providers.Desired{App: app, Release: "R1", Token: "R1"})
			}
			r.Close()
			file := filepath.Join(dir, tt.file)
			if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(file, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			var log syncBuffer
			o := testOptions()
			o.Logger = slog.New(slog.NewTextHandler(&log, nil))
			r, err = Open(dir, o)
			if tt.wantOpenErr {
				if err == nil {
					r.Close()
				}
				if !errors.Is(err, providers.ErrInvalid) || !strings.Contains(err.Error(), file) {
					t.Fatalf("Open = %v, want ErrInvalid naming %s", err, file)
				}
				return
			}
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer r.Close()
			if got := log.String(); !strings.Contains(got, "level=ERROR") || !strings.Contains(got, file) {
				t.Errorf("the rack's log has no error naming %s:\n%s", file, got)
			}
			if tt.check != nil {
				tt.check(t, r, file)
			}
		})
	}
}
