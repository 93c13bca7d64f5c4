package sqlitestore_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/providertest"

	sqlitestore "example.com/sqlitestore"
)

// TestConformance runs the SDK's Store conformance suite on one database.
func TestConformance(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "store.db"))
	providertest.TestStore(t, func(*testing.T) providers.Store { return s })
}

// The rules below are this provider's own, beyond the shared contract.

func TestOpen(t *testing.T) {
	for _, tc := range []struct {
		name string
		path string
	}{
		{"an empty path is refused", ""},
		{"a path with a query is refused", "store.db?mode=ro"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := sqlitestore.Open(tc.path)
			if !errors.Is(err, providers.ErrInvalid) {
				t.Errorf("Open(%q) = %v, want an error matching ErrInvalid", tc.path, err)
			}
		})
	}

	t.Run("the database file is readable by its owner only", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "store.db")
		s := open(t, path)
		if _, err := s.Put(t.Context(), "k", []byte("secret"), 0); err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{path, path + "-wal"} {
			fi, err := os.Stat(name)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(os.FileMode(0o600), fi.Mode().Perm()); diff != "" {
				t.Errorf("mode of %s (-want +got):\n%s", filepath.Base(name), diff)
			}
		}
	})
}

func TestVersionsSurviveReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "store.db")
	ctx := t.Context()
	s := open(t, path)
	v1, err := s.Put(ctx, "k", []byte("v1"), 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "k", v1); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s = open(t, path)
	v2, err := s.Put(ctx, "k", []byte("v2"), 0)
	if err != nil {
		t.Fatal(err)
	}
	if v2 <= v1 {
		t.Errorf("version after delete and reopen = %d, want greater than %d", v2, v1)
	}
}

func TestTwoHandlesOnOneFile(t *testing.T) {
	// Two Stores on one file stand for two processes: a compare-and-swap
	// on one must see the other's writes, and of racing writers at the same
	// version exactly one wins.
	path := filepath.Join(t.TempDir(), "store.db")
	a, b := open(t, path), open(t, path)
	ctx := t.Context()
	v, err := a.Put(ctx, "k", []byte("v0"), 0)
	if err != nil {
		t.Fatal(err)
	}
	const rounds = 20
	for round := range rounds {
		var wg sync.WaitGroup
		start := make(chan struct{})
		results := make([]error, 8)
		versions := make([]int64, 8)
		for i := range results {
			s := a
			if i%2 == 1 {
				s = b
			}
			wg.Go(func() {
				<-start
				versions[i], results[i] = s.Put(ctx, "k", []byte(fmt.Sprint(round, i)), v)
			})
		}
		close(start)
		wg.Wait()
		won := 0
		for i, err := range results {
			switch {
			case err == nil:
				won++
				v = versions[i]
			case !errors.Is(err, providers.ErrConflict):
				t.Fatalf("round %d: Put: %v, want nil or ErrConflict", round, err)
			}
		}
		if won != 1 {
			t.Fatalf("round %d: %d writers won at one version, want exactly 1", round, won)
		}
	}
}

func open(t *testing.T, path string) *sqlitestore.Store {
	t.Helper()
	s, err := sqlitestore.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
