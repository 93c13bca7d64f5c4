package local

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/convox-go/convox/providers"
)

// fsError wraps a file system error with the sentinel that matches its
// cause: a permission or read-only problem is ErrPermission, a missing file
// is ErrNotFound, a full disk is ErrUnavailable and anything else is
// ErrInvalid (a path that cannot be used).
func fsError(op string, err error) error {
	if err == nil {
		return nil
	}
	var sentinel error
	switch {
	case errors.Is(err, fs.ErrPermission), errors.Is(err, syscall.EROFS), errors.Is(err, syscall.EPERM):
		sentinel = providers.ErrPermission
	case errors.Is(err, fs.ErrNotExist):
		sentinel = providers.ErrNotFound
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT), errors.Is(err, syscall.EIO):
		sentinel = providers.ErrUnavailable
	default:
		sentinel = providers.ErrInvalid
	}
	return fmt.Errorf("%s: %w: %w", op, sentinel, err)
}

// writeFileAtomic replaces name with data so that a crash leaves either the
// old or the new content: it writes a temporary file in the same
// directory, syncs it, renames it over name and syncs the directory.
func writeFileAtomic(name string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(name)
	f, err := os.CreateTemp(dir, "."+filepath.Base(name)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after a successful rename
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, name); err != nil {
		return err
	}
	return syncDir(dir)
}

// writeJSONAtomic encodes v and writes it with writeFileAtomic.
func writeJSONAtomic(name string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(name, append(data, '\n'), 0o600)
}

// readJSON decodes the JSON file name into v.
func readJSON(name string, v any) error {
	data, err := os.ReadFile(name)
	if err != nil {
		return err
	}
	return json.Unmarshal(data, v)
}

// syncDir makes a rename or a new file in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) {
		return err
	}
	return nil
}

// randomHex returns n random bytes as lowercase hex.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
