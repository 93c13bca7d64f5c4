package local

import (
	"fmt"
	"os"
	"syscall"

	"github.com/convox-go/convox/providers"
)

// ensureRackDir makes dir the rack's directory and the current user's
// alone. A missing directory is created with mode 0700 (missing parents
// too). An existing one must be a directory owned by the current user that
// neither group nor others can write: anyone who could write to it may
// already have planted files or symbolic links in it, so Open refuses it
// rather than trusting what is inside. One that group or others can only
// read or enter is tightened to 0700, since the registry's credential,
// the logs and the apps' environments live in it.
func ensureRackDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fsError("open rack directory", err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fsError("open rack directory", err)
	}
	if !fi.IsDir() {
		return providers.Invalidf("rack directory %s is not a directory", dir)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("rack directory %s belongs to uid %d, not to this program's user (uid %d): use a directory of your own: %w",
			dir, st.Uid, os.Geteuid(), providers.ErrPermission)
	}
	perm := fi.Mode().Perm()
	if perm&0o022 != 0 {
		return fmt.Errorf("rack directory %s has mode %04o, so other users can write to it: check that everything in it is yours, then run \"chmod 700 %s\": %w",
			dir, perm, dir, providers.ErrPermission)
	}
	if perm&0o077 != 0 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return fsError("restrict rack directory "+dir+" to its owner", err)
		}
	}
	return nil
}
