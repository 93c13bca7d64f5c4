package providertest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/convox-go/convox/providers"
)

// TestStore checks the providers.Store contract. newStore is called once
// per case and may return a shared store: every case works under a key
// prefix of its own and deletes its keys when it ends.
func TestStore(t *testing.T, newStore func(t *testing.T) providers.Store) {
	setup := func(t *testing.T) (providers.Store, string) {
		s := newStore(t)
		prefix := "providertest/" + uniqueName() + "/"
		t.Cleanup(func() { clearPrefix(s, prefix) })
		return s, prefix
	}
	equateEmpty := cmpopts.EquateEmpty()

	t.Run("Get/missing key returns ErrNotFound", func(t *testing.T) {
		s, p := setup(t)
		_, err := s.Get(t.Context(), p+"missing")
		wantErr(t, "Get of a missing key", err, providers.ErrNotFound)
	})

	t.Run("Get/returns the value and the version Put returned", func(t *testing.T) {
		s, p := setup(t)
		v := putOK(t, s, p+"k", "hello", 0)
		want := providers.Doc{Key: p + "k", Value: []byte("hello"), Version: v}
		if diff := cmp.Diff(want, getOK(t, s, p+"k")); diff != "" {
			t.Errorf("Get (-want +got):\n%s", diff)
		}
	})

	t.Run("Get/returned value is the caller's to modify", func(t *testing.T) {
		s, p := setup(t)
		putOK(t, s, p+"k", "hello", 0)
		d := getOK(t, s, p+"k")
		copy(d.Value, "HELLO")
		if diff := cmp.Diff("hello", string(getOK(t, s, p+"k").Value)); diff != "" {
			t.Errorf("value after modifying a returned copy (-want +got):\n%s", diff)
		}
	})

	t.Run("Put/create-only on a missing key creates it with a positive version", func(t *testing.T) {
		s, p := setup(t)
		v := putOK(t, s, p+"k", "v1", 0)
		if v <= 0 {
			t.Errorf("Put returned version %d, want a positive one", v)
		}
	})

	t.Run("Put/create-only on an existing key returns ErrConflict and keeps the document", func(t *testing.T) {
		s, p := setup(t)
		v := putOK(t, s, p+"k", "first", 0)
		_, err := s.Put(t.Context(), p+"k", []byte("second"), 0)
		wantErr(t, "second create-only Put", err, providers.ErrConflict)
		want := providers.Doc{Key: p + "k", Value: []byte("first"), Version: v}
		if diff := cmp.Diff(want, getOK(t, s, p+"k")); diff != "" {
			t.Errorf("document after the conflict (-want +got):\n%s", diff)
		}
	})

	t.Run("Put/matching version replaces the value with a greater version", func(t *testing.T) {
		s, p := setup(t)
		v1 := putOK(t, s, p+"k", "first", 0)
		v2 := putOK(t, s, p+"k", "second", v1)
		if v2 <= v1 {
			t.Errorf("Put at version %d returned version %d, want a greater one", v1, v2)
		}
		want := providers.Doc{Key: p + "k", Value: []byte("second"), Version: v2}
		if diff := cmp.Diff(want, getOK(t, s, p+"k")); diff != "" {
			t.Errorf("Get (-want +got):\n%s", diff)
		}
	})

	t.Run("Put/stale version returns ErrConflict and keeps the document", func(t *testing.T) {
		s, p := setup(t)
		v1 := putOK(t, s, p+"k", "first", 0)
		v2 := putOK(t, s, p+"k", "second", v1)
		_, err := s.Put(t.Context(), p+"k", []byte("third"), v1)
		wantErr(t, "Put at a stale version", err, providers.ErrConflict)
		want := providers.Doc{Key: p + "k", Value: []byte("second"), Version: v2}
		if diff := cmp.Diff(want, getOK(t, s, p+"k")); diff != "" {
			t.Errorf("document after the conflict (-want +got):\n%s", diff)
		}
	})

	t.Run("Put/positive version on a missing key returns ErrConflict", func(t *testing.T) {
		s, p := setup(t)
		_, err := s.Put(t.Context(), p+"k", []byte("v"), 1)
		wantErr(t, "Put at version 1 of a missing key", err, providers.ErrConflict)
		_, err = s.Get(t.Context(), p+"k")
		wantErr(t, "Get after the conflict", err, providers.ErrNotFound)
	})

	t.Run("Put/AnyVersion creates a missing key", func(t *testing.T) {
		s, p := setup(t)
		v := putOK(t, s, p+"k", "v", providers.AnyVersion)
		want := providers.Doc{Key: p + "k", Value: []byte("v"), Version: v}
		if diff := cmp.Diff(want, getOK(t, s, p+"k")); diff != "" {
			t.Errorf("Get (-want +got):\n%s", diff)
		}
	})

	t.Run("Put/AnyVersion overwrites whatever version is stored", func(t *testing.T) {
		s, p := setup(t)
		v1 := putOK(t, s, p+"k", "first", 0)
		v2 := putOK(t, s, p+"k", "second", providers.AnyVersion)
		if v2 <= v1 {
			t.Errorf("unconditional Put returned version %d after %d, want a greater one", v2, v1)
		}
		want := providers.Doc{Key: p + "k", Value: []byte("second"), Version: v2}
		if diff := cmp.Diff(want, getOK(t, s, p+"k")); diff != "" {
			t.Errorf("Get (-want +got):\n%s", diff)
		}
	})

	t.Run("Put/versions strictly increase", func(t *testing.T) {
		s, p := setup(t)
		var versions []int64
		v := int64(0)
		for i := range 8 {
			cond := v
			if i%2 == 1 {
				cond = providers.AnyVersion
			}
			v = putOK(t, s, p+"k", fmt.Sprint(i), cond)
			versions = append(versions, v)
		}
		if !slices.IsSorted(versions) || len(slices.Compact(slices.Clone(versions))) != len(versions) {
			t.Errorf("versions of successive Puts: %v, want strictly increasing", versions)
		}
	})

	t.Run("Put/the caller may reuse the value's buffer", func(t *testing.T) {
		s, p := setup(t)
		buf := []byte("hello")
		putOK(t, s, p+"k", string(buf), 0)
		if _, err := s.Put(t.Context(), p+"k2", buf, 0); err != nil {
			t.Fatalf("Put: %v", err)
		}
		copy(buf, "HELLO")
		if diff := cmp.Diff("hello", string(getOK(t, s, p+"k2").Value)); diff != "" {
			t.Errorf("value after the caller reused its buffer (-want +got):\n%s", diff)
		}
	})

	t.Run("Put/values round-trip byte for byte", func(t *testing.T) {
		all := make([]byte, 256)
		for i := range all {
			all[i] = byte(i)
		}
		for _, tc := range []struct {
			name  string
			value []byte
		}{
			{"empty", []byte{}},
			{"nil", nil},
			{"every byte value", all},
			{"json", []byte(`{"release":"r1","env":{"A":"1"}}`)},
			{"large", []byte(strings.Repeat("0123456789abcdef", 4096))},
		} {
			t.Run(tc.name, func(t *testing.T) {
				s, p := setup(t)
				v, err := s.Put(t.Context(), p+"k", tc.value, 0)
				must(t, "Put", err)
				want := providers.Doc{Key: p + "k", Value: tc.value, Version: v}
				if diff := cmp.Diff(want, getOK(t, s, p+"k"), equateEmpty); diff != "" {
					t.Errorf("Get (-want +got):\n%s", diff)
				}
			})
		}
	})

	t.Run("Keys/invalid keys return ErrInvalid from every method", func(t *testing.T) {
		s, _ := setup(t)
		for _, tc := range []struct {
			name string
			key  string
		}{
			{"empty", ""},
			{"too long", strings.Repeat("k", providers.MaxKeyLen+1)},
			{"invalid UTF-8", "providertest/\xff\xfe"},
			{"newline", "providertest/a\nb"},
			{"NUL", "providertest/a\x00b"},
			{"DEL", "providertest/a\x7fb"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, err := s.Get(t.Context(), tc.key)
				wantErr(t, "Get", err, providers.ErrInvalid)
				_, err = s.Put(t.Context(), tc.key, []byte("v"), 0)
				wantErr(t, "Put create-only", err, providers.ErrInvalid)
				_, err = s.Put(t.Context(), tc.key, []byte("v"), providers.AnyVersion)
				wantErr(t, "Put AnyVersion", err, providers.ErrInvalid)
				err = s.Delete(t.Context(), tc.key, providers.AnyVersion)
				wantErr(t, "Delete AnyVersion", err, providers.ErrInvalid)
			})
		}
	})

	t.Run("Keys/keys up to MaxKeyLen bytes with slashes, spaces and any Unicode are accepted", func(t *testing.T) {
		s, p := setup(t)
		long := p + strings.Repeat("x", providers.MaxKeyLen-len(p))
		for _, key := range []string{long, p + "a/b/c", p + "with space", p + "ünïcødé/日本/🚀", p + "punct!@#$%^&*()[]{}:;'\",<>?|\\=+~`"} {
			v := putOK(t, s, key, "v", 0)
			want := providers.Doc{Key: key, Value: []byte("v"), Version: v}
			if diff := cmp.Diff(want, getOK(t, s, key)); diff != "" {
				t.Errorf("Get %q (-want +got):\n%s", key, diff)
			}
		}
	})

	t.Run("Delete/matching version removes the document", func(t *testing.T) {
		s, p := setup(t)
		v := putOK(t, s, p+"k", "v", 0)
		must(t, "Delete", s.Delete(t.Context(), p+"k", v))
		_, err := s.Get(t.Context(), p+"k")
		wantErr(t, "Get after Delete", err, providers.ErrNotFound)
	})

	t.Run("Delete/stale version returns ErrConflict and keeps the document", func(t *testing.T) {
		s, p := setup(t)
		v1 := putOK(t, s, p+"k", "first", 0)
		v2 := putOK(t, s, p+"k", "second", v1)
		wantErr(t, "Delete at a stale version", s.Delete(t.Context(), p+"k", v1), providers.ErrConflict)
		want := providers.Doc{Key: p + "k", Value: []byte("second"), Version: v2}
		if diff := cmp.Diff(want, getOK(t, s, p+"k")); diff != "" {
			t.Errorf("document after the conflict (-want +got):\n%s", diff)
		}
	})

	t.Run("Delete/positive version on a missing key returns ErrNotFound", func(t *testing.T) {
		s, p := setup(t)
		wantErr(t, "Delete at version 1 of a missing key", s.Delete(t.Context(), p+"k", 1), providers.ErrNotFound)
	})

	t.Run("Delete/AnyVersion removes the document", func(t *testing.T) {
		s, p := setup(t)
		putOK(t, s, p+"k", "v", 0)
		must(t, "Delete", s.Delete(t.Context(), p+"k", providers.AnyVersion))
		_, err := s.Get(t.Context(), p+"k")
		wantErr(t, "Get after Delete", err, providers.ErrNotFound)
	})

	t.Run("Delete/AnyVersion on a missing key returns nil", func(t *testing.T) {
		s, p := setup(t)
		if err := s.Delete(t.Context(), p+"k", providers.AnyVersion); err != nil {
			t.Errorf("Delete of a missing key: %v, want nil", err)
		}
	})

	t.Run("Delete/ifVersion 0 returns ErrInvalid and keeps the document", func(t *testing.T) {
		s, p := setup(t)
		v := putOK(t, s, p+"k", "v", 0)
		wantErr(t, "Delete at version 0 of an existing key", s.Delete(t.Context(), p+"k", 0), providers.ErrInvalid)
		wantErr(t, "Delete at version 0 of a missing key", s.Delete(t.Context(), p+"missing", 0), providers.ErrInvalid)
		want := providers.Doc{Key: p + "k", Value: []byte("v"), Version: v}
		if diff := cmp.Diff(want, getOK(t, s, p+"k")); diff != "" {
			t.Errorf("document after the refused Delete (-want +got):\n%s", diff)
		}
	})

	t.Run("Delete/a deleted key can be created again", func(t *testing.T) {
		s, p := setup(t)
		v := putOK(t, s, p+"k", "first", 0)
		must(t, "Delete", s.Delete(t.Context(), p+"k", v))
		v2 := putOK(t, s, p+"k", "second", 0)
		want := providers.Doc{Key: p + "k", Value: []byte("second"), Version: v2}
		if diff := cmp.Diff(want, getOK(t, s, p+"k")); diff != "" {
			t.Errorf("Get (-want +got):\n%s", diff)
		}
	})

	t.Run("List/prefix without keys returns an empty final page", func(t *testing.T) {
		s, p := setup(t)
		page, err := s.List(t.Context(), p, providers.ListOptions{})
		must(t, "List", err)
		if diff := cmp.Diff(providers.DocPage{}, page, equateEmpty); diff != "" {
			t.Errorf("List of an empty prefix (-want +got):\n%s", diff)
		}
	})

	// Suffixes whose byte order differs from any case-folding or
	// locale-aware collation.
	suffixes := []string{"a", "a b", "a-b", "a/b", "aa", "B", "b", "0", "Z", "~", "é", "-", "_", "日本"}

	t.Run("List/lists keys in ascending byte order with values and versions", func(t *testing.T) {
		s, p := setup(t)
		want := make([]providers.Doc, 0, len(suffixes))
		for _, i := range rand.Perm(len(suffixes)) {
			k := p + suffixes[i]
			want = append(want, providers.Doc{Key: k, Value: []byte("value of " + k), Version: putOK(t, s, k, "value of "+k, 0)})
		}
		slices.SortFunc(want, func(a, b providers.Doc) int { return strings.Compare(a.Key, b.Key) })
		got, _ := listAll(t, s, p, providers.ListOptions{})
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("List (-want +got):\n%s", diff)
		}
	})

	t.Run("List/Reverse lists keys in descending byte order", func(t *testing.T) {
		s, p := setup(t)
		var want []string
		for _, i := range rand.Perm(len(suffixes)) {
			putOK(t, s, p+suffixes[i], "v", 0)
			want = append(want, p+suffixes[i])
		}
		slices.Sort(want)
		slices.Reverse(want)
		got, _ := listAll(t, s, p, providers.ListOptions{Reverse: true})
		if diff := cmp.Diff(want, docKeys(got)); diff != "" {
			t.Errorf("List with Reverse (-want +got):\n%s", diff)
		}
	})

	t.Run("List/prefix isolation: a/ lists neither a nor ab", func(t *testing.T) {
		s, p := setup(t)
		for _, k := range []string{"a", "ab", "a/1", "a/2/x", "a0", "b/1"} {
			putOK(t, s, p+k, "v", 0)
		}
		for _, reverse := range []bool{false, true} {
			want := []string{p + "a/1", p + "a/2/x"}
			if reverse {
				slices.Reverse(want)
			}
			got, _ := listAll(t, s, p+"a/", providers.ListOptions{Reverse: reverse, Limit: 1})
			if diff := cmp.Diff(want, docKeys(got)); diff != "" {
				t.Errorf("List %q Reverse=%v (-want +got):\n%s", p+"a/", reverse, diff)
			}
		}
	})

	t.Run("List/pages cover every key once, in order, within Limit", func(t *testing.T) {
		s, p := setup(t)
		var keys []string
		for i := range 7 {
			k := fmt.Sprintf("%sk%02d", p, i)
			putOK(t, s, k, "v", 0)
			keys = append(keys, k)
		}
		for _, tc := range []struct {
			limit   int
			reverse bool
		}{{1, false}, {2, false}, {3, false}, {7, false}, {8, false}, {0, false}, {1, true}, {2, true}, {0, true}} {
			t.Run(fmt.Sprintf("Limit=%d/Reverse=%v", tc.limit, tc.reverse), func(t *testing.T) {
				want := slices.Clone(keys)
				if tc.reverse {
					slices.Reverse(want)
				}
				got, pages := listAll(t, s, p, providers.ListOptions{Limit: tc.limit, Reverse: tc.reverse})
				if diff := cmp.Diff(want, docKeys(got)); diff != "" {
					t.Errorf("keys over all pages (-want +got):\n%s", diff)
				}
				for i, n := range pages {
					if tc.limit > 0 && n > tc.limit {
						t.Errorf("page %d has %d documents, over the limit %d", i, n, tc.limit)
					}
				}
				if tc.limit > 0 && len(pages) < (len(keys)+tc.limit-1)/tc.limit {
					t.Errorf("%d pages of at most %d documents cannot hold %d keys", len(pages), tc.limit, len(keys))
				}
			})
		}
	})

	t.Run("List/keys existing throughout a paged listing appear exactly once", func(t *testing.T) {
		s, p := setup(t)
		versions := map[string]int64{}
		for _, k := range []string{"k0", "k1", "k2", "k3", "k4", "k5"} {
			versions[k] = putOK(t, s, p+k, "v", 0)
		}
		for _, reverse := range []bool{false, true} {
			opts := providers.ListOptions{Limit: 2, Reverse: reverse}
			page, err := s.List(t.Context(), p, opts)
			must(t, "List first page", err)
			seen := docKeys(page.Docs)
			// Change the store between pages: a key is deleted, one is
			// created, one is updated, then later pages are read.
			victim, newcomer := "k4", "k25"
			if reverse {
				victim, newcomer = "k1", "k15"
			}
			must(t, "Delete between pages", s.Delete(t.Context(), p+victim, providers.AnyVersion))
			putOK(t, s, p+newcomer, "v", 0)
			versions["k3"] = putOK(t, s, p+"k3", "updated", versions["k3"])
			for page.Next != "" {
				opts.Token = page.Next
				page, err = s.List(t.Context(), p, opts)
				must(t, "List next page", err)
				seen = append(seen, docKeys(page.Docs)...)
			}
			counts := map[string]int{}
			for _, k := range seen {
				counts[strings.TrimPrefix(k, p)]++
			}
			for k, n := range counts {
				if n > 1 {
					t.Errorf("Reverse=%v: key %q listed %d times", reverse, k, n)
				}
			}
			for _, k := range []string{"k0", "k2", "k3", "k5"} {
				if counts[k] != 1 {
					t.Errorf("Reverse=%v: key %q, which existed throughout the listing, listed %d times; want once (listed: %q)", reverse, k, counts[k], seen)
				}
			}
			// Restore for the other direction.
			putOK(t, s, p+victim, "v", providers.AnyVersion)
			must(t, "Delete", s.Delete(t.Context(), p+newcomer, providers.AnyVersion))
		}
	})

	t.Run("List/a token from another listing returns ErrInvalid", func(t *testing.T) {
		s, p := setup(t)
		for _, k := range []string{"a/1", "a/2", "a/3", "b/1", "b/2", "b/3"} {
			putOK(t, s, p+k, "v", 0)
		}
		page, err := s.List(t.Context(), p+"a/", providers.ListOptions{Limit: 1})
		must(t, "List", err)
		if page.Next == "" {
			t.Fatalf("List with Limit 1 of 3 keys returned no Next token")
		}
		_, err = s.List(t.Context(), p+"b/", providers.ListOptions{Limit: 1, Token: page.Next})
		wantErr(t, "List of another prefix with the token", err, providers.ErrInvalid)
		_, err = s.List(t.Context(), p+"a/", providers.ListOptions{Limit: 1, Reverse: true, Token: page.Next})
		wantErr(t, "List in the other order with the token", err, providers.ErrInvalid)
		_, err = s.List(t.Context(), p+"a/", providers.ListOptions{Limit: 1, Token: "not a token from this store"})
		wantErr(t, "List with a malformed token", err, providers.ErrInvalid)
	})

	t.Run("Concurrency/racing Puts at the same version: exactly one wins", func(t *testing.T) {
		s, p := setup(t)
		for _, tc := range []struct {
			name string
			prep func() int64 // returns the version every racer uses
		}{
			{"create-only", func() int64 { return 0 }},
			{"conditional update", func() int64 { return putOK(t, s, p+"conditional update", "initial", 0) }},
		} {
			t.Run(tc.name, func(t *testing.T) {
				key := p + tc.name
				at := tc.prep()
				const racers = 20
				var wg sync.WaitGroup
				errs := make([]error, racers)
				versions := make([]int64, racers)
				for i := range racers {
					wg.Go(func() {
						versions[i], errs[i] = s.Put(t.Context(), key, fmt.Appendf(nil, "racer %d", i), at)
					})
				}
				wg.Wait()
				winner := -1
				for i, err := range errs {
					switch {
					case err == nil && winner >= 0:
						t.Errorf("racers %d and %d both won", winner, i)
					case err == nil:
						winner = i
					case !errors.Is(err, providers.ErrConflict):
						t.Errorf("racer %d: got error %v, want nil or one matching ErrConflict", i, err)
					}
				}
				if winner < 0 {
					t.Fatalf("no racer won")
				}
				want := providers.Doc{Key: key, Value: fmt.Appendf(nil, "racer %d", winner), Version: versions[winner]}
				if diff := cmp.Diff(want, getOK(t, s, key)); diff != "" {
					t.Errorf("stored document (-want +got):\n%s", diff)
				}
			})
		}
	})

	t.Run("Concurrency/concurrent Puts of distinct keys all succeed", func(t *testing.T) {
		s, p := setup(t)
		const writers = 20
		var wg sync.WaitGroup
		for i := range writers {
			wg.Go(func() {
				if _, err := s.Put(t.Context(), fmt.Sprintf("%sk%02d", p, i), []byte("v"), 0); err != nil {
					t.Errorf("Put %d: %v", i, err)
				}
			})
		}
		wg.Wait()
		got, _ := listAll(t, s, p, providers.ListOptions{})
		if len(got) != writers {
			t.Errorf("List after %d concurrent creates: %d documents (%q)", writers, len(got), docKeys(got))
		}
	})

	t.Run("Context/canceled context fails every method with context.Canceled", func(t *testing.T) {
		s, p := setup(t)
		v := putOK(t, s, p+"k", "v", 0)
		for _, tc := range []struct {
			method string
			call   func(ctx context.Context) error
		}{
			{"Get", func(ctx context.Context) error { _, err := s.Get(ctx, p+"k"); return err }},
			{"Put", func(ctx context.Context) error { _, err := s.Put(ctx, p+"new", []byte("v"), 0); return err }},
			{"Delete", func(ctx context.Context) error { return s.Delete(ctx, p+"k", v) }},
			{"List", func(ctx context.Context) error { _, err := s.List(ctx, p, providers.ListOptions{}); return err }},
		} {
			t.Run(tc.method, func(t *testing.T) { checkCanceled(t, tc.call) })
		}
		_, err := s.Get(t.Context(), p+"new")
		wantErr(t, "Get of the key a canceled Put named", err, providers.ErrNotFound)
		if diff := cmp.Diff(v, getOK(t, s, p+"k").Version); diff != "" {
			t.Errorf("version after a canceled Delete (-want +got):\n%s", diff)
		}
	})
}

func putOK(t *testing.T, s providers.Store, key, value string, ifVersion int64) int64 {
	t.Helper()
	v, err := s.Put(t.Context(), key, []byte(value), ifVersion)
	if err != nil {
		t.Fatalf("Put %q at version %d: %v", key, ifVersion, err)
	}
	return v
}

func getOK(t *testing.T, s providers.Store, key string) providers.Doc {
	t.Helper()
	d, err := s.Get(t.Context(), key)
	if err != nil {
		t.Fatalf("Get %q: %v", key, err)
	}
	return d
}

func docKeys(docs []providers.Doc) []string {
	keys := make([]string, len(docs))
	for i, d := range docs {
		keys[i] = d.Key
	}
	return keys
}

// listAll pages through a listing and returns its documents and the size
// of each page.
func listAll(t *testing.T, s providers.Store, prefix string, opts providers.ListOptions) ([]providers.Doc, []int) {
	t.Helper()
	var docs []providers.Doc
	var sizes []int
	for range 1000 {
		page, err := s.List(t.Context(), prefix, opts)
		if err != nil {
			t.Fatalf("List %q %+v: %v", prefix, opts, err)
		}
		docs = append(docs, page.Docs...)
		sizes = append(sizes, len(page.Docs))
		if page.Next == "" {
			return docs, sizes
		}
		opts.Token = page.Next
	}
	t.Fatalf("List %q: no end after 1000 pages", prefix)
	return nil, nil
}

// clearPrefix deletes every key under prefix, best effort.
func clearPrefix(s providers.Store, prefix string) {
	ctx, cancel := cleanupContext()
	defer cancel()
	opts := providers.ListOptions{}
	for range 1000 {
		page, err := s.List(ctx, prefix, opts)
		if err != nil {
			return
		}
		for _, d := range page.Docs {
			s.Delete(ctx, d.Key, providers.AnyVersion)
		}
		if page.Next == "" {
			return
		}
		opts.Token = page.Next
	}
}
