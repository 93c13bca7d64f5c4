package providertest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/convox-go/convox/providers"
)

// TestStore checks the providers.Store contract. newStore is called once
// per case and may return a shared store: every case works under a key
// prefix of its own and deletes its keys when it ends.
//
// Each rule group is a subtest of its own (Get, Put, Keys, Delete, List,
// Concurrency, Context), runnable alone with -run.
func TestStore(t *testing.T, newStore func(t *testing.T) providers.Store) {
	h := storeSuite{newStore: newStore}
	t.Run("Get", h.testGet)
	t.Run("Put", h.testPut)
	t.Run("Keys", h.testKeys)
	t.Run("Delete", h.testDelete)
	t.Run("List", h.testList)
	t.Run("Concurrency", h.testConcurrency)
	t.Run("Context", h.testContext)
}

// storeSuite is the harness the Store rule groups share.
type storeSuite struct {
	newStore func(t *testing.T) providers.Store
}

// setup returns the store and a key prefix of the case's own, cleared
// when the case ends.
func (h storeSuite) setup(t *testing.T) (providers.Store, string) {
	s := h.newStore(t)
	prefix := "providertest/" + uniqueName() + "/"
	t.Cleanup(func() { clearPrefix(s, prefix) })
	return s, prefix
}

var equateEmpty = cmpopts.EquateEmpty()

// listSuffixes are key suffixes whose byte order differs from any
// case-folding or locale-aware collation.
var listSuffixes = []string{"a", "a b", "a-b", "a/b", "aa", "B", "b", "0", "Z", "~", "é", "-", "_", "日本"}

func (h storeSuite) testGet(t *testing.T) {
	t.Run("missing key returns ErrNotFound", func(t *testing.T) {
		s, p := h.setup(t)
		_, err := s.Get(t.Context(), p+"missing")
		wantErr(t, "Get of a missing key", err, providers.ErrNotFound)
	})

	t.Run("returns the value and the version Put returned", func(t *testing.T) {
		s, p := h.setup(t)
		v := putOK(t, s, p+"k", "hello", 0)
		want := providers.Doc{Key: p + "k", Value: []byte("hello"), Version: v}
		if diff := cmp.Diff(want, getOK(t, s, p+"k")); diff != "" {
			t.Errorf("Get (-want +got):\n%s", diff)
		}
	})

	t.Run("returned value is the caller's to modify", func(t *testing.T) {
		s, p := h.setup(t)
		putOK(t, s, p+"k", "hello", 0)
		d := getOK(t, s, p+"k")
		copy(d.Value, "HELLO")
		if diff := cmp.Diff("hello", string(getOK(t, s, p+"k").Value)); diff != "" {
			t.Errorf("value after modifying a returned copy (-want +got):\n%s", diff)
		}
	})
}

func (h storeSuite) testPut(t *testing.T) {
	t.Run("create-only on a missing key creates it with a positive version", func(t *testing.T) {
		s, p := h.setup(t)
		v := putOK(t, s, p+"k", "v1", 0)
		if v <= 0 {
			t.Errorf("Put returned version %d, want a positive one", v)
		}
	})

	t.Run("create-only on an existing key returns ErrConflict and keeps the document", func(t *testing.T) {
		s, p := h.setup(t)
		v := putOK(t, s, p+"k", "first", 0)
		_, err := s.Put(t.Context(), p+"k", []byte("second"), 0)
		wantErr(t, "second create-only Put", err, providers.ErrConflict)
		want := providers.Doc{Key: p + "k", Value: []byte("first"), Version: v}
		if diff := cmp.Diff(want, getOK(t, s, p+"k")); diff != "" {
			t.Errorf("document after the conflict (-want +got):\n%s", diff)
		}
	})

	t.Run("matching version replaces the value with a greater version", func(t *testing.T) {
		s, p := h.setup(t)
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

	t.Run("stale version returns ErrConflict and keeps the document", func(t *testing.T) {
		s, p := h.setup(t)
		v1 := putOK(t, s, p+"k", "first", 0)
		v2 := putOK(t, s, p+"k", "second", v1)
		_, err := s.Put(t.Context(), p+"k", []byte("third"), v1)
		wantErr(t, "Put at a stale version", err, providers.ErrConflict)
		want := providers.Doc{Key: p + "k", Value: []byte("second"), Version: v2}
		if diff := cmp.Diff(want, getOK(t, s, p+"k")); diff != "" {
			t.Errorf("document after the conflict (-want +got):\n%s", diff)
		}
	})

	t.Run("positive version on a missing key returns ErrConflict", func(t *testing.T) {
		s, p := h.setup(t)
		_, err := s.Put(t.Context(), p+"k", []byte("v"), 1)
		wantErr(t, "Put at version 1 of a missing key", err, providers.ErrConflict)
		_, err = s.Get(t.Context(), p+"k")
		wantErr(t, "Get after the conflict", err, providers.ErrNotFound)
	})

	t.Run("AnyVersion creates a missing key", func(t *testing.T) {
		s, p := h.setup(t)
		v := putOK(t, s, p+"k", "v", providers.AnyVersion)
		want := providers.Doc{Key: p + "k", Value: []byte("v"), Version: v}
		if diff := cmp.Diff(want, getOK(t, s, p+"k")); diff != "" {
			t.Errorf("Get (-want +got):\n%s", diff)
		}
	})

	t.Run("AnyVersion overwrites whatever version is stored", func(t *testing.T) {
		s, p := h.setup(t)
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

	t.Run("versions strictly increase", func(t *testing.T) {
		s, p := h.setup(t)
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

	t.Run("the caller may reuse the value's buffer", func(t *testing.T) {
		s, p := h.setup(t)
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

	t.Run("values round-trip byte for byte", func(t *testing.T) {
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
				s, p := h.setup(t)
				v, err := s.Put(t.Context(), p+"k", tc.value, 0)
				must(t, "Put", err)
				want := providers.Doc{Key: p + "k", Value: tc.value, Version: v}
				if diff := cmp.Diff(want, getOK(t, s, p+"k"), equateEmpty); diff != "" {
					t.Errorf("Get (-want +got):\n%s", diff)
				}
			})
		}
	})
}

func (h storeSuite) testKeys(t *testing.T) {
	t.Run("invalid keys return ErrInvalid from every method", func(t *testing.T) {
		s, _ := h.setup(t)
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

	t.Run("keys up to MaxKeyLen bytes with slashes, spaces and any Unicode are accepted", func(t *testing.T) {
		s, p := h.setup(t)
		long := p + strings.Repeat("x", providers.MaxKeyLen-len(p))
		for _, key := range []string{long, p + "a/b/c", p + "with space", p + "ünïcødé/日本/🚀", p + "punct!@#$%^&*()[]{}:;'\",<>?|\\=+~`"} {
			v := putOK(t, s, key, "v", 0)
			want := providers.Doc{Key: key, Value: []byte("v"), Version: v}
			if diff := cmp.Diff(want, getOK(t, s, key)); diff != "" {
				t.Errorf("Get %q (-want +got):\n%s", key, diff)
			}
		}
	})
}

func (h storeSuite) testDelete(t *testing.T) {
	t.Run("matching version removes the document", func(t *testing.T) {
		s, p := h.setup(t)
		v := putOK(t, s, p+"k", "v", 0)
		must(t, "Delete", s.Delete(t.Context(), p+"k", v))
		_, err := s.Get(t.Context(), p+"k")
		wantErr(t, "Get after Delete", err, providers.ErrNotFound)
	})

	t.Run("stale version returns ErrConflict and keeps the document", func(t *testing.T) {
		s, p := h.setup(t)
		v1 := putOK(t, s, p+"k", "first", 0)
		v2 := putOK(t, s, p+"k", "second", v1)
		wantErr(t, "Delete at a stale version", s.Delete(t.Context(), p+"k", v1), providers.ErrConflict)
		want := providers.Doc{Key: p + "k", Value: []byte("second"), Version: v2}
		if diff := cmp.Diff(want, getOK(t, s, p+"k")); diff != "" {
			t.Errorf("document after the conflict (-want +got):\n%s", diff)
		}
	})

	t.Run("positive version on a missing key returns ErrNotFound", func(t *testing.T) {
		s, p := h.setup(t)
		wantErr(t, "Delete at version 1 of a missing key", s.Delete(t.Context(), p+"k", 1), providers.ErrNotFound)
	})

	t.Run("AnyVersion removes the document", func(t *testing.T) {
		s, p := h.setup(t)
		putOK(t, s, p+"k", "v", 0)
		must(t, "Delete", s.Delete(t.Context(), p+"k", providers.AnyVersion))
		_, err := s.Get(t.Context(), p+"k")
		wantErr(t, "Get after Delete", err, providers.ErrNotFound)
	})

	t.Run("AnyVersion on a missing key returns nil", func(t *testing.T) {
		s, p := h.setup(t)
		if err := s.Delete(t.Context(), p+"k", providers.AnyVersion); err != nil {
			t.Errorf("Delete of a missing key: %v, want nil", err)
		}
	})

	t.Run("ifVersion 0 returns ErrInvalid and keeps the document", func(t *testing.T) {
		s, p := h.setup(t)
		v := putOK(t, s, p+"k", "v", 0)
		wantErr(t, "Delete at version 0 of an existing key", s.Delete(t.Context(), p+"k", 0), providers.ErrInvalid)
		wantErr(t, "Delete at version 0 of a missing key", s.Delete(t.Context(), p+"missing", 0), providers.ErrInvalid)
		want := providers.Doc{Key: p + "k", Value: []byte("v"), Version: v}
		if diff := cmp.Diff(want, getOK(t, s, p+"k")); diff != "" {
			t.Errorf("document after the refused Delete (-want +got):\n%s", diff)
		}
	})

	t.Run("a deleted key can be created again", func(t *testing.T) {
		s, p := h.setup(t)
		v := putOK(t, s, p+"k", "first", 0)
		must(t, "Delete", s.Delete(t.Context(), p+"k", v))
		v2 := putOK(t, s, p+"k", "second", 0)
		want := providers.Doc{Key: p + "k", Value: []byte("second"), Version: v2}
		if diff := cmp.Diff(want, getOK(t, s, p+"k")); diff != "" {
			t.Errorf("Get (-want +got):\n%s", diff)
		}
	})

	t.Run("a key created again never reuses a version it had before", func(t *testing.T) {
		s, p := h.setup(t)
		var before []int64
		v := putOK(t, s, p+"k", "first", 0)
		before = append(before, v)
		v = putOK(t, s, p+"k", "second", v)
		before = append(before, v)
		must(t, "Delete", s.Delete(t.Context(), p+"k", v))
		again := putOK(t, s, p+"k", "again", 0)
		if again <= slices.Max(before) {
			t.Errorf("the key created again has version %d; it had versions %v before it was deleted, want a greater one", again, before)
		}
		// A writer still holding a version from before the delete must
		// not overwrite the new document, nor delete it.
		for _, stale := range before {
			if _, err := s.Put(t.Context(), p+"k", []byte("stale write"), stale); !errors.Is(err, providers.ErrConflict) {
				t.Errorf("Put at version %d, from before the delete: got error %v, want one matching ErrConflict", stale, err)
			}
			if err := s.Delete(t.Context(), p+"k", stale); !errors.Is(err, providers.ErrConflict) {
				t.Errorf("Delete at version %d, from before the delete: got error %v, want one matching ErrConflict", stale, err)
			}
		}
		want := providers.Doc{Key: p + "k", Value: []byte("again"), Version: again}
		if diff := cmp.Diff(want, getOK(t, s, p+"k")); diff != "" {
			t.Errorf("document after writes at stale versions (-want +got):\n%s", diff)
		}
	})
}

func (h storeSuite) testList(t *testing.T) {
	t.Run("prefix without keys returns an empty final page", func(t *testing.T) {
		s, p := h.setup(t)
		page, err := s.List(t.Context(), p, providers.ListOptions{})
		must(t, "List", err)
		if diff := cmp.Diff(providers.DocPage{}, page, equateEmpty); diff != "" {
			t.Errorf("List of an empty prefix (-want +got):\n%s", diff)
		}
	})

	t.Run("lists keys in ascending byte order with values and versions", func(t *testing.T) {
		s, p := h.setup(t)
		want := make([]providers.Doc, 0, len(listSuffixes))
		for _, i := range rand.Perm(len(listSuffixes)) {
			k := p + listSuffixes[i]
			want = append(want, providers.Doc{Key: k, Value: []byte("value of " + k), Version: putOK(t, s, k, "value of "+k, 0)})
		}
		slices.SortFunc(want, func(a, b providers.Doc) int { return strings.Compare(a.Key, b.Key) })
		got, _ := listAll(t, s, p, providers.ListOptions{})
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("List (-want +got):\n%s", diff)
		}
	})

	t.Run("Reverse lists keys in descending byte order", func(t *testing.T) {
		s, p := h.setup(t)
		var want []string
		for _, i := range rand.Perm(len(listSuffixes)) {
			putOK(t, s, p+listSuffixes[i], "v", 0)
			want = append(want, p+listSuffixes[i])
		}
		slices.Sort(want)
		slices.Reverse(want)
		got, _ := listAll(t, s, p, providers.ListOptions{Reverse: true})
		if diff := cmp.Diff(want, docKeys(got)); diff != "" {
			t.Errorf("List with Reverse (-want +got):\n%s", diff)
		}
	})

	t.Run("prefix isolation: a/ lists neither a nor ab", func(t *testing.T) {
		s, p := h.setup(t)
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

	t.Run("pages cover every key once, in order, within Limit", func(t *testing.T) {
		s, p := h.setup(t)
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

	t.Run("keys existing throughout a paged listing appear exactly once", func(t *testing.T) {
		// Between the first page and the next ones, one change is made
		// behind the cursor (among keys already listed) or ahead of it. A
		// token that counts keys instead of naming a position repeats or
		// skips keys when a key behind the cursor comes or goes.
		type change struct {
			name string
			// do changes the store; listed are the keys of the first
			// page, ahead the keys not listed yet, in listing order. It
			// returns the key it deleted, if any.
			do func(t *testing.T, s providers.Store, listed, ahead []string) (deleted string)
		}
		changes := []change{
			{"a listed key is deleted", func(t *testing.T, s providers.Store, listed, _ []string) string {
				must(t, "Delete", s.Delete(t.Context(), listed[0], providers.AnyVersion))
				return listed[0]
			}},
			{"a key is created behind the cursor", func(t *testing.T, s providers.Store, listed, _ []string) string {
				putOK(t, s, between(listed[0], listed[1]), "new", 0)
				return ""
			}},
			{"a listed key is updated", func(t *testing.T, s providers.Store, listed, _ []string) string {
				putOK(t, s, listed[1], "updated", providers.AnyVersion)
				return ""
			}},
			{"a key ahead is deleted", func(t *testing.T, s providers.Store, _, ahead []string) string {
				must(t, "Delete", s.Delete(t.Context(), ahead[1], providers.AnyVersion))
				return ahead[1]
			}},
			{"a key is created ahead of the cursor", func(t *testing.T, s providers.Store, _, ahead []string) string {
				putOK(t, s, between(ahead[0], ahead[1]), "new", 0)
				return ""
			}},
			{"a key ahead is updated", func(t *testing.T, s providers.Store, _, ahead []string) string {
				putOK(t, s, ahead[1], "updated", providers.AnyVersion)
				return ""
			}},
		}
		for _, reverse := range []bool{false, true} {
			for _, ch := range changes {
				t.Run(fmt.Sprintf("Reverse=%v/%s", reverse, ch.name), func(t *testing.T) {
					s, p := h.setup(t)
					var keys []string
					for i := range 6 {
						keys = append(keys, fmt.Sprintf("%sk%d", p, i))
						putOK(t, s, keys[i], "v", 0)
					}
					if reverse {
						slices.Reverse(keys)
					}
					opts := providers.ListOptions{Limit: 2, Reverse: reverse}
					page, err := s.List(t.Context(), p, opts)
					must(t, "List first page", err)
					if diff := cmp.Diff(keys[:2], docKeys(page.Docs)); diff != "" || page.Next == "" {
						t.Fatalf("first page of Limit 2 (-want +got):\n%s\nNext %q", diff, page.Next)
					}
					seen := docKeys(page.Docs)
					deleted := ch.do(t, s, keys[:2], keys[2:])
					for page.Next != "" && len(seen) < 100 {
						opts.Token = page.Next
						page, err = s.List(t.Context(), p, opts)
						must(t, "List next page", err)
						seen = append(seen, docKeys(page.Docs)...)
					}
					counts := map[string]int{}
					for _, k := range seen {
						counts[k]++
					}
					for _, k := range keys {
						if k != deleted && counts[k] != 1 {
							t.Errorf("key %q, which existed throughout the listing, listed %d times; want once (listed: %q)", k, counts[k], seen)
						}
					}
					for k, n := range counts {
						if n > 1 && !slices.Contains(keys, k) {
							t.Errorf("key %q listed %d times (listed: %q)", k, n, seen)
						}
					}
				})
			}
		}
	})

	t.Run("a token from another listing returns ErrInvalid", func(t *testing.T) {
		s, p := h.setup(t)
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
}

func (h storeSuite) testConcurrency(t *testing.T) {
	t.Run("racing Puts at the same version: exactly one wins", func(t *testing.T) {
		t.Run("create-only", func(t *testing.T) {
			// Every racer creates the keys of rounds 0, 1, ... in turn.
			s, p := h.setup(t)
			const rounds = raceRounds / 5 // each leaves a key to clean up
			key := func(round int) string { return fmt.Sprintf("%sround-%d", p, round) }
			winners := make([]atomic.Int64, rounds) // racer+1 by round
			versions := make([]atomic.Int64, rounds)
			var failures failures
			race(t, rounds, func(ctx context.Context, racer, round int) bool {
				v, err := s.Put(ctx, key(round), fmt.Appendf(nil, "racer %d", racer), 0)
				switch {
				case err == nil && !winners[round].CompareAndSwap(0, int64(racer)+1):
					return failures.add("round %d: racers %d and %d both created %q", round, winners[round].Load()-1, racer, key(round))
				case err == nil:
					versions[round].Store(v)
				case !errors.Is(err, providers.ErrConflict):
					return failures.add("round %d: racer %d: got error %v, want nil or one matching ErrConflict", round, racer, err)
				}
				return failures.none()
			})
			failures.report(t)
			if w := winners[0].Load(); w > 0 {
				want := providers.Doc{Key: key(0), Value: fmt.Appendf(nil, "racer %d", w-1), Version: versions[0].Load()}
				if diff := cmp.Diff(want, getOK(t, s, key(0))); diff != "" {
					t.Errorf("document of the racer that won (-want +got):\n%s", diff)
				}
			}
		})
		t.Run("conditional update", func(t *testing.T) {
			// Every racer increments a counter: Get, then Put at the
			// version read. Each version read is put at by one racer
			// only, and no increment is lost.
			s, p := h.setup(t)
			key := p + "counter"
			putOK(t, s, key, "0", 0)
			var mu sync.Mutex
			won := map[int64]int{} // version put at -> racer
			var failures failures
			race(t, raceRounds, func(ctx context.Context, racer, round int) bool {
				d, err := s.Get(ctx, key)
				if err != nil {
					return failures.add("racer %d: Get: %v", racer, err)
				}
				n, err := strconv.Atoi(string(d.Value))
				if err != nil {
					return failures.add("racer %d: the counter holds %q", racer, d.Value)
				}
				_, err = s.Put(ctx, key, []byte(strconv.Itoa(n+1)), d.Version)
				switch {
				case err == nil:
					mu.Lock()
					defer mu.Unlock()
					if other, ok := won[d.Version]; ok {
						return failures.add("racers %d and %d both put at version %d", other, racer, d.Version)
					}
					won[d.Version] = racer
				case !errors.Is(err, providers.ErrConflict):
					return failures.add("racer %d: Put at version %d: got error %v, want nil or one matching ErrConflict", racer, d.Version, err)
				}
				return failures.none()
			})
			failures.report(t)
			if diff := cmp.Diff(strconv.Itoa(len(won)), string(getOK(t, s, key).Value)); diff != "" {
				t.Errorf("counter after %d successful increments (-want +got):\n%s", len(won), diff)
			}
		})
	})

	t.Run("racing conditional Deletes and Puts at the same version: exactly one wins", func(t *testing.T) {
		// Every racer reads a key and deletes it or replaces it at the
		// version read (creating it when it is missing): each version is
		// consumed by one racer only.
		s, p := h.setup(t)
		key := p + "k"
		var mu sync.Mutex
		won := map[int64]string{} // version -> what consumed it
		var failures failures
		race(t, raceRounds, func(ctx context.Context, racer, round int) bool {
			d, err := s.Get(ctx, key)
			if errors.Is(err, providers.ErrNotFound) {
				_, err = s.Put(ctx, key, []byte("v"), 0)
				if err != nil && !errors.Is(err, providers.ErrConflict) {
					return failures.add("racer %d: create-only Put: %v", racer, err)
				}
				return failures.none()
			}
			if err != nil {
				return failures.add("racer %d: Get: %v", racer, err)
			}
			op := fmt.Sprintf("racer %d's Put", racer)
			if (racer+round)%2 == 0 {
				op = fmt.Sprintf("racer %d's Delete", racer)
				err = s.Delete(ctx, key, d.Version)
			} else {
				_, err = s.Put(ctx, key, []byte("v"), d.Version)
			}
			switch {
			case err == nil:
				mu.Lock()
				defer mu.Unlock()
				if other, ok := won[d.Version]; ok {
					return failures.add("%s and %s both succeeded at version %d", other, op, d.Version)
				}
				won[d.Version] = op
			case !errors.Is(err, providers.ErrConflict) && !errors.Is(err, providers.ErrNotFound):
				return failures.add("%s at version %d: got error %v, want nil or one matching ErrConflict or ErrNotFound", op, d.Version, err)
			}
			return failures.none()
		})
		failures.report(t)
	})

	t.Run("concurrent Puts of distinct keys all succeed", func(t *testing.T) {
		s, p := h.setup(t)
		const rounds = 2000
		var created atomic.Int64
		var failures failures
		race(t, rounds, func(ctx context.Context, racer, round int) bool {
			if _, err := s.Put(ctx, fmt.Sprintf("%sr%d-%05d", p, racer, round), []byte("v"), 0); err != nil {
				return failures.add("racer %d, round %d: Put of a new key: %v", racer, round, err)
			}
			created.Add(1)
			return failures.none()
		})
		failures.report(t)
		got, _ := listAll(t, s, p, providers.ListOptions{Limit: 1000})
		if int64(len(got)) != created.Load() {
			t.Errorf("List after %d concurrent creates of distinct keys: %d documents", created.Load(), len(got))
		}
	})
}

func (h storeSuite) testContext(t *testing.T) {
	t.Run("canceled context fails every method with context.Canceled", func(t *testing.T) {
		s, p := h.setup(t)
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

// between returns a key that sorts between a and b, which are keys
// differing in their last byte.
func between(a, b string) string {
	return min(a, b) + "5"
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
