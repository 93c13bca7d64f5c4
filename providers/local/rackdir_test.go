package local

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/convox-go/convox/providers"
)

func TestOpenMakesTheRackDirectoryTheOwners(t *testing.T) {
	tests := []struct {
		name     string
		prepare  func(t *testing.T, dir string) // makes dir (or not)
		wantErr  error
		wantText string      // in the error
		wantMode os.FileMode // after a successful Open
	}{
		{"a missing directory is created owner-only", func(t *testing.T, dir string) {}, nil, "", 0o700},
		{"missing parents are created owner-only too", func(t *testing.T, dir string) {}, nil, "", 0o700},
		{"an owner-only directory is used as is", func(t *testing.T, dir string) { must(t, os.Mkdir(dir, 0o700)) }, nil, "", 0o700},
		{"a directory others can read is tightened to 0700", func(t *testing.T, dir string) {
			must(t, os.Mkdir(dir, 0o700))
			must(t, os.Chmod(dir, 0o755))
		}, nil, "", 0o700},
		{"a directory the group can write is refused", func(t *testing.T, dir string) {
			must(t, os.Mkdir(dir, 0o700))
			must(t, os.Chmod(dir, 0o770))
		}, providers.ErrPermission, "chmod 700", 0},
		{"a directory anyone can write is refused", func(t *testing.T, dir string) {
			must(t, os.Mkdir(dir, 0o700))
			must(t, os.Chmod(dir, 0o777|os.ModeSticky))
		}, providers.ErrPermission, "other users can write to it", 0},
		{"a file is not a rack directory", func(t *testing.T, dir string) {
			must(t, os.WriteFile(dir, nil, 0o600))
		}, providers.ErrInvalid, "not a directory", 0},
	}
	if os.Geteuid() == 0 {
		tests = append(tests, struct {
			name     string
			prepare  func(t *testing.T, dir string)
			wantErr  error
			wantText string
			wantMode os.FileMode
		}{"a directory of another user is refused", func(t *testing.T, dir string) {
			must(t, os.Mkdir(dir, 0o700))
			must(t, os.Chown(dir, 65534, 65534))
		}, providers.ErrPermission, "belongs to uid 65534", 0})
	} else {
		t.Log("not root: the case of a directory owned by another user is not run")
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "rack")
			if strings.Contains(tt.name, "parents") {
				dir = filepath.Join(t.TempDir(), "a", "b", "rack")
			}
			tt.prepare(t, dir)
			r, err := Open(dir, testOptions())
			if err == nil {
				defer r.Close()
			}
			if !errors.Is(err, tt.wantErr) || (err != nil && !strings.Contains(err.Error(), tt.wantText)) {
				t.Fatalf("Open error = %v, want %v containing %q", err, tt.wantErr, tt.wantText)
			}
			fi, serr := os.Stat(dir)
			must(t, serr)
			if err != nil {
				if fi.IsDir() {
					entries, _ := os.ReadDir(dir)
					if len(entries) != 0 {
						t.Errorf("the refused directory has %d entries, want none: Open refuses before writing", len(entries))
					}
				}
				return
			}
			if diff := cmp.Diff(tt.wantMode, fi.Mode().Perm()); diff != "" {
				t.Errorf("directory mode (-want +got):\n%s", diff)
			}
			if strings.Contains(tt.name, "parents") {
				parent, err := os.Stat(filepath.Dir(dir))
				must(t, err)
				if parent.Mode().Perm() != 0o700 {
					t.Errorf("created parent has mode %v, want 0700", parent.Mode().Perm())
				}
			}
		})
	}
}
