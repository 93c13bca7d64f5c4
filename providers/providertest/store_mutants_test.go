package providertest_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/providertest"
)

// storeMutants are memStores with one bug each.
func storeMutants() []mutant {
	rows := []struct{ bug, caughtBy string }{
		{"cas-check-then-write", "Concurrency/racing Puts at the same version: exactly one wins"},
		{"cas-delete-check-then-write", "Concurrency/racing conditional Deletes and Puts at the same version: exactly one wins"},
		{"busy-store-refuses-writes", "Concurrency/concurrent Puts of distinct keys all succeed"},
		{"list-offset-tokens", "List/keys existing throughout a paged listing appear exactly once"},
		{"list-token-repeats-last-key", "List/pages cover every key once, in order, within Limit"},
		{"list-token-unbound", "List/a token from another listing returns ErrInvalid"},
		{"list-limit-plus-one", "List/pages cover every key once, in order, within Limit"},
		{"list-case-insensitive-order", "List/lists keys in ascending byte order with values and versions"},
		{"list-ignores-reverse", "List/Reverse lists keys in descending byte order"},
		{"list-prefix-not-a-directory", "List/prefix isolation: a/ lists neither a nor ab"},
		{"list-without-versions", "List/lists keys in ascending byte order with values and versions"},
		{"versions-restart-after-delete", "Delete/a key created again never reuses a version it had before"},
		{"get-aliases-stored-value", "Get/returned value is the caller's to modify"},
		{"put-keeps-caller-buffer", "Put/the caller may reuse the value's buffer"},
		{"create-only-overwrites", "Put/create-only on an existing key returns ErrConflict and keeps the document"},
		{"stale-version-accepted", "Put/stale version returns ErrConflict and keeps the document"},
		{"update-creates-missing-key", "Put/positive version on a missing key returns ErrConflict"},
		{"any-version-needs-existing-key", "Put/AnyVersion creates a missing key"},
		{"any-version-keeps-version", "Put/AnyVersion overwrites whatever version is stored"},
		{"values-as-text", "Put/values round-trip byte for byte"},
		{"keys-unvalidated", "Keys/invalid keys return ErrInvalid from every method"},
		{"keys-limited-to-255-bytes", "Keys/keys up to MaxKeyLen bytes with slashes, spaces and any Unicode are accepted"},
		{"delete-ignores-version", "Delete/stale version returns ErrConflict and keeps the document"},
		{"delete-missing-at-version-succeeds", "Delete/positive version on a missing key returns ErrNotFound"},
		{"delete-any-version-missing-not-found", "Delete/AnyVersion on a missing key returns nil"},
		{"delete-version-zero-is-any", "Delete/ifVersion 0 returns ErrInvalid and keeps the document"},
		{"store-ignores-canceled-context", "Context/canceled context fails every method with context.Canceled"},
	}
	var ms []mutant
	for _, r := range rows {
		ms = append(ms, mutant{name: r.bug, iface: "Store", caughtBy: r.caughtBy, suite: func(t *testing.T) {
			providertest.TestStore(t, func(*testing.T) providers.Store { return newMemStore(r.bug) })
		}})
	}
	return ms
}

// memStore is a purpose-built in-memory Store. With bug "" it keeps the
// contract (TestControls checks it); each other bug breaks one rule.
type memStore struct {
	bug string
	// mu guards docs, seq and keySeq.
	mu     sync.Mutex
	docs   map[string]providers.Doc
	seq    int64
	keySeq map[string]int64
	// checkMu and writeMu are the separate locks of the check-then-write
	// bugs; busy is the lock a busy store refuses writes on.
	checkMu, writeMu, busy sync.Mutex
}

func newMemStore(bug string) *memStore {
	return &memStore{bug: bug, docs: map[string]providers.Doc{}, keySeq: map[string]int64{}}
}

func (s *memStore) enter(ctx context.Context, key string) error {
	if s.bug != "store-ignores-canceled-context" {
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	if s.bug == "keys-unvalidated" {
		return nil
	}
	if s.bug == "keys-limited-to-255-bytes" && len(key) > 255 {
		return providers.Invalidf("key too long")
	}
	return providers.ValidateKey(key)
}

func (s *memStore) Get(ctx context.Context, key string) (providers.Doc, error) {
	if err := s.enter(ctx, key); err != nil {
		return providers.Doc{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.docs[key]
	if !ok {
		return providers.Doc{}, fmt.Errorf("get %q: %w", key, providers.ErrNotFound)
	}
	if s.bug != "get-aliases-stored-value" {
		d.Value = bytes.Clone(d.Value)
	}
	return d, nil
}

// checkPut returns the error of a Put at ifVersion of a key stored as
// cur (ok false: missing).
func (s *memStore) checkPut(cur providers.Doc, ok bool, ifVersion int64) error {
	switch {
	case ifVersion == providers.AnyVersion:
		if !ok && s.bug == "any-version-needs-existing-key" {
			return providers.ErrNotFound
		}
	case ifVersion == 0 && ok:
		if s.bug != "create-only-overwrites" {
			return providers.ErrConflict
		}
	case ifVersion > 0 && !ok:
		if s.bug != "update-creates-missing-key" {
			return providers.ErrConflict
		}
	case ifVersion > 0 && cur.Version != ifVersion:
		if s.bug != "stale-version-accepted" {
			return providers.ErrConflict
		}
	}
	return nil
}

// write stores a new version of key; s.mu is held.
func (s *memStore) write(key string, value []byte, cur providers.Doc, ok bool, ifVersion int64) int64 {
	var v int64
	switch {
	case s.bug == "any-version-keeps-version" && ok && ifVersion == providers.AnyVersion:
		v = cur.Version
	case s.bug == "versions-restart-after-delete":
		s.keySeq[key]++
		v = s.keySeq[key]
	default:
		s.seq++
		v = s.seq
	}
	switch s.bug {
	case "put-keeps-caller-buffer":
	case "values-as-text":
		value = []byte(strings.ToValidUTF8(string(value), "?"))
	default:
		value = bytes.Clone(value)
	}
	s.docs[key] = providers.Doc{Key: key, Value: value, Version: v}
	return v
}

func (s *memStore) Put(ctx context.Context, key string, value []byte, ifVersion int64) (int64, error) {
	if err := s.enter(ctx, key); err != nil {
		return 0, err
	}
	if ifVersion < providers.AnyVersion {
		return 0, providers.Invalidf("version %d", ifVersion)
	}
	switch s.bug {
	case "busy-store-refuses-writes":
		if !s.busy.TryLock() {
			return 0, fmt.Errorf("put %q: the store is busy: %w", key, providers.ErrConflict)
		}
		defer s.busy.Unlock()
		// A real store holds such a lock across its I/O: yield while
		// holding it, so that racers meet it even on a loaded machine.
		runtime.Gosched()
		time.Sleep(10 * time.Microsecond)
	case "cas-check-then-write":
		// The check and the write are each atomic, under locks of their
		// own, but not together: a racer may check between them.
		s.checkMu.Lock()
		s.mu.Lock()
		cur, ok := s.docs[key]
		s.mu.Unlock()
		err := s.checkPut(cur, ok, ifVersion)
		s.checkMu.Unlock()
		if err != nil {
			return 0, fmt.Errorf("put %q: %w", key, err)
		}
		s.writeMu.Lock()
		defer s.writeMu.Unlock()
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.write(key, value, cur, ok, ifVersion), nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.docs[key]
	if err := s.checkPut(cur, ok, ifVersion); err != nil {
		return 0, fmt.Errorf("put %q at version %d: %w", key, ifVersion, err)
	}
	return s.write(key, value, cur, ok, ifVersion), nil
}

// checkDelete returns the error of a Delete at ifVersion of a key stored
// as cur, and whether there is something to delete.
func (s *memStore) checkDelete(cur providers.Doc, ok bool, ifVersion int64) (bool, error) {
	switch {
	case !ok && ifVersion == providers.AnyVersion:
		if s.bug == "delete-any-version-missing-not-found" {
			return false, providers.ErrNotFound
		}
		return false, nil
	case !ok:
		if s.bug == "delete-missing-at-version-succeeds" {
			return false, nil
		}
		return false, providers.ErrNotFound
	case ifVersion != providers.AnyVersion && cur.Version != ifVersion && s.bug != "delete-ignores-version":
		return false, providers.ErrConflict
	}
	return true, nil
}

func (s *memStore) Delete(ctx context.Context, key string, ifVersion int64) error {
	if err := s.enter(ctx, key); err != nil {
		return err
	}
	if ifVersion == 0 && s.bug == "delete-version-zero-is-any" {
		ifVersion = providers.AnyVersion
	}
	if ifVersion == 0 || ifVersion < providers.AnyVersion {
		return providers.Invalidf("delete %q: version %d", key, ifVersion)
	}
	if s.bug == "cas-delete-check-then-write" {
		s.checkMu.Lock()
		s.mu.Lock()
		cur, ok := s.docs[key]
		s.mu.Unlock()
		found, err := s.checkDelete(cur, ok, ifVersion)
		s.checkMu.Unlock()
		if err != nil || !found {
			return err
		}
		s.writeMu.Lock()
		defer s.writeMu.Unlock()
		s.mu.Lock()
		defer s.mu.Unlock()
		s.remove(key)
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.docs[key]
	found, err := s.checkDelete(cur, ok, ifVersion)
	if err != nil {
		return fmt.Errorf("delete %q at version %d: %w", key, ifVersion, err)
	}
	if found {
		s.remove(key)
	}
	return nil
}

// remove deletes key; s.mu is held.
func (s *memStore) remove(key string) {
	delete(s.docs, key)
	if s.bug == "versions-restart-after-delete" {
		delete(s.keySeq, key)
	}
}

// memListToken is a List token: the listing it continues and the last
// key it returned (or, with bug list-offset-tokens, how many keys it
// returned).
type memListToken struct {
	Prefix  string `json:"p"`
	Reverse bool   `json:"r"`
	After   string `json:"a"`
	Offset  int    `json:"o"`
}

func (s *memStore) List(ctx context.Context, prefix string, opts providers.ListOptions) (providers.DocPage, error) {
	if err := s.enter(ctx, "x"); err != nil {
		return providers.DocPage{}, err
	}
	limit := opts.Limit
	if limit <= 0 {
		limit = 100
	}
	var tok *memListToken
	if opts.Token != "" {
		tok = new(memListToken)
		raw, err := base64.RawURLEncoding.DecodeString(opts.Token)
		if err == nil {
			err = json.Unmarshal(raw, tok)
		}
		if err != nil {
			return providers.DocPage{}, providers.Invalidf("malformed token")
		}
		if (tok.Prefix != prefix || tok.Reverse != opts.Reverse) && s.bug != "list-token-unbound" {
			return providers.DocPage{}, providers.Invalidf("token of another listing")
		}
	}
	match := prefix
	if s.bug == "list-prefix-not-a-directory" {
		match = strings.TrimSuffix(prefix, "/")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var keys []string
	for k := range s.docs {
		if strings.HasPrefix(k, match) {
			keys = append(keys, k)
		}
	}
	if s.bug == "list-case-insensitive-order" {
		slices.SortFunc(keys, func(a, b string) int { return strings.Compare(strings.ToLower(a), strings.ToLower(b)) })
	} else {
		slices.Sort(keys)
	}
	if opts.Reverse && s.bug != "list-ignores-reverse" {
		slices.Reverse(keys)
	}
	offset := 0
	if tok != nil {
		if s.bug == "list-offset-tokens" {
			offset = tok.Offset
		} else {
			offset = slices.IndexFunc(keys, func(k string) bool {
				after := k > tok.After
				if opts.Reverse {
					after = k < tok.After
				}
				return after || (s.bug == "list-token-repeats-last-key" && k == tok.After)
			})
			if offset < 0 {
				offset = len(keys)
			}
		}
	}
	keys = keys[min(offset, len(keys)):]
	if s.bug == "list-limit-plus-one" {
		limit++
	}
	var page providers.DocPage
	for i, k := range keys {
		if i == limit {
			raw, _ := json.Marshal(memListToken{Prefix: prefix, Reverse: opts.Reverse, After: keys[i-1], Offset: offset + i})
			page.Next = base64.RawURLEncoding.EncodeToString(raw)
			break
		}
		d := s.docs[k]
		d.Value = bytes.Clone(d.Value)
		if s.bug == "list-without-versions" {
			d.Version = 0
		}
		page.Docs = append(page.Docs, d)
	}
	return page, nil
}
