package local

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/convox-go/convox/providers"
)

func newTestStore(t *testing.T) *Store {
	t.Helper()
	s, err := OpenStore(t.TempDir(), 0)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestStoreCompareAndSwap(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name    string
		setup   bool // store "k" (version v) first
		key     string
		ifVer   func(v int64) int64
		wantErr error
	}{
		{"create only succeeds on a missing key", false, "k", func(int64) int64 { return 0 }, nil},
		{"create only conflicts on an existing key", true, "k", func(int64) int64 { return 0 }, providers.ErrConflict},
		{"matching version replaces", true, "k", func(v int64) int64 { return v }, nil},
		{"stale version conflicts", true, "k", func(v int64) int64 { return v + 1 }, providers.ErrConflict},
		{"positive version on a missing key conflicts", false, "k", func(int64) int64 { return 7 }, providers.ErrConflict},
		{"any version writes unconditionally", true, "k", func(int64) int64 { return AnyVersion }, nil},
		{"empty key is invalid", false, "", func(int64) int64 { return 0 }, providers.ErrInvalid},
		{"control character in key is invalid", false, "a\nb", func(int64) int64 { return 0 }, providers.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestStore(t)
			var v int64
			if tt.setup {
				var err error
				if v, err = s.Put(ctx, "k", []byte("old"), 0); err != nil {
					t.Fatal(err)
				}
			}
			got, err := s.Put(ctx, tt.key, []byte("new"), tt.ifVer(v))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Put error = %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if got <= v {
				t.Errorf("Put returned version %d, want greater than %d", got, v)
			}
			doc, err := s.Get(ctx, tt.key)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(providers.Doc{Key: tt.key, Value: []byte("new"), Version: got}, doc); diff != "" {
				t.Errorf("Get (-want +got):\n%s", diff)
			}
		})
	}
}

func TestStoreDelete(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name    string
		setup   bool
		ifVer   func(v int64) int64
		wantErr error
	}{
		{"matching version deletes", true, func(v int64) int64 { return v }, nil},
		{"stale version conflicts", true, func(v int64) int64 { return v + 1 }, providers.ErrConflict},
		{"versioned delete of a missing key is not found", false, func(int64) int64 { return 3 }, providers.ErrNotFound},
		{"unconditional delete of a missing key succeeds", false, func(int64) int64 { return AnyVersion }, nil},
		{"version zero is invalid", true, func(int64) int64 { return 0 }, providers.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestStore(t)
			var v int64
			if tt.setup {
				var err error
				if v, err = s.Put(ctx, "k", []byte("x"), 0); err != nil {
					t.Fatal(err)
				}
			}
			err := s.Delete(ctx, "k", tt.ifVer(v))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Delete error = %v, want %v", err, tt.wantErr)
			}
			_, getErr := s.Get(ctx, "k")
			wantGone := err == nil || !tt.setup
			if gone := errors.Is(getErr, providers.ErrNotFound); gone != wantGone {
				t.Errorf("after Delete, key gone = %v, want %v", gone, wantGone)
			}
		})
	}
}

func TestStoreVersionsNeverRepeatAfterRecreate(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	v1, err := s.Put(ctx, "k", []byte("a"), 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "k", v1); err != nil {
		t.Fatal(err)
	}
	v2, err := s.Put(ctx, "k", []byte("b"), 0)
	if err != nil {
		t.Fatal(err)
	}
	if v2 <= v1 {
		t.Errorf("recreated key got version %d, want greater than %d", v2, v1)
	}
}

func TestStoreList(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	for _, k := range []string{"apps/a", "apps/a/releases/01", "apps/a/releases/02", "apps/b", "apps0", "other", "apps"} {
		if _, err := s.Put(ctx, k, []byte(k), AnyVersion); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name    string
		prefix  string
		reverse bool
		limit   int
		want    []string
	}{
		{"ascending by key within the prefix", "apps/", false, 0, []string{"apps/a", "apps/a/releases/01", "apps/a/releases/02", "apps/b"}},
		{"descending with reverse", "apps/", true, 0, []string{"apps/b", "apps/a/releases/02", "apps/a/releases/01", "apps/a"}},
		{"pages ascending without repeats", "apps/", false, 1, []string{"apps/a", "apps/a/releases/01", "apps/a/releases/02", "apps/b"}},
		{"pages descending without repeats", "apps/", true, 3, []string{"apps/b", "apps/a/releases/02", "apps/a/releases/01", "apps/a"}},
		{"empty prefix lists everything", "", false, 2, []string{"apps", "apps/a", "apps/a/releases/01", "apps/a/releases/02", "apps/b", "apps0", "other"}},
		{"empty prefix reversed", "", true, 0, []string{"other", "apps0", "apps/b", "apps/a/releases/02", "apps/a/releases/01", "apps/a", "apps"}},
		{"no match is an empty listing", "zzz", false, 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			opts := providers.ListOptions{Reverse: tt.reverse, Limit: tt.limit}
			for {
				page, err := s.List(ctx, tt.prefix, opts)
				if err != nil {
					t.Fatal(err)
				}
				if tt.limit > 0 && len(page.Docs) > tt.limit {
					t.Fatalf("page has %d docs, limit %d", len(page.Docs), tt.limit)
				}
				for _, d := range page.Docs {
					got = append(got, d.Key)
				}
				if page.Next == "" {
					break
				}
				opts.Token = page.Next
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("keys (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("token from another listing is invalid", func(t *testing.T) {
		page, err := s.List(ctx, "apps/", providers.ListOptions{Limit: 1})
		if err != nil {
			t.Fatal(err)
		}
		_, err = s.List(ctx, "other", providers.ListOptions{Limit: 1, Token: page.Next})
		if !errors.Is(err, providers.ErrInvalid) {
			t.Errorf("List with a foreign token: error = %v, want ErrInvalid", err)
		}
	})
}

func TestStoreSurvivesReopen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := OpenStore(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	v, err := s.Put(ctx, "apps/web", []byte(`{"active":"R1"}`), 0)
	if err != nil {
		t.Fatal(err)
	}
	reopened, err := OpenStore(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	got, err := reopened.Get(ctx, "apps/web")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(providers.Doc{Key: "apps/web", Value: []byte(`{"active":"R1"}`), Version: v}, got); diff != "" {
		t.Errorf("Get after reopen (-want +got):\n%s", diff)
	}
}

// storeIncrements is how many compare-and-swap increments each writer of
// the concurrency tests performs.
const storeIncrements = 15

// increment adds one to the counter document by compare-and-swap, retrying
// on conflicts.
func increment(ctx context.Context, s *Store, key string) error {
	for {
		doc, err := s.Get(ctx, key)
		var n int
		if err == nil {
			n, _ = strconv.Atoi(string(doc.Value))
		} else if !errors.Is(err, providers.ErrNotFound) {
			return err
		}
		_, err = s.Put(ctx, key, []byte(strconv.Itoa(n+1)), doc.Version)
		if errors.Is(err, providers.ErrConflict) {
			continue
		}
		return err
	}
}

// TestStoreHelperProcess is not a test: it is the second program of
// TestStoreIsSafeAcrossPrograms.
func TestStoreHelperProcess(t *testing.T) {
	dir := os.Getenv("LOCAL_STORE_HELPER_DIR")
	if dir == "" {
		t.Skip("helper process for TestStoreIsSafeAcrossPrograms")
	}
	s, err := OpenStore(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	for range storeIncrements {
		if err := increment(context.Background(), s, "counter"); err != nil {
			t.Fatal(err)
		}
	}
}

func TestStoreIsSafeAcrossPrograms(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := OpenStore(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestStoreHelperProcess$")
	cmd.Env = append(os.Environ(), "LOCAL_STORE_HELPER_DIR="+dir)
	var wg sync.WaitGroup
	var helperOut []byte
	var helperErr error
	wg.Go(func() { helperOut, helperErr = cmd.CombinedOutput() })
	other, err := OpenStore(dir, 0) // a second handle, as a second program in this process
	if err != nil {
		t.Fatal(err)
	}
	for i := range storeIncrements {
		h := s
		if i%2 == 1 {
			h = other
		}
		if err := increment(ctx, h, "counter"); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	if helperErr != nil {
		t.Fatalf("helper program: %v\n%s", helperErr, helperOut)
	}
	doc, err := s.Get(ctx, "counter")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(fmt.Sprint(2*storeIncrements), string(doc.Value)); diff != "" {
		t.Errorf("counter after concurrent increments (-want +got):\n%s", diff)
	}
}
