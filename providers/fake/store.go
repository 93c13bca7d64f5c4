package fake

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/convox-go/convox/providers"
)

// Store is the rack's providers.Store. Versions come from one rack-wide
// counter, so they strictly increase for a key even across a delete. List
// tokens name the last key returned, so paging never repeats or skips a
// key that exists throughout.
type Store struct{ r *Rack }

var _ providers.Store = (*Store)(nil)

// DefaultListLimit is the page size of a List with a zero Limit.
const DefaultListLimit = 100

// Get implements providers.Store.
func (s *Store) Get(ctx context.Context, key string) (providers.Doc, error) {
	c := Call{Provider: "Store", Method: "Get", Key: key, Args: []any{key}}
	return do(s.r, ctx, c, func(ctx context.Context) (providers.Doc, error) {
		if h := s.r.currentHooks().Store.Get; h != nil {
			return h(ctx, key, s.get)
		}
		return s.get(ctx, key)
	})
}

func (s *Store) get(ctx context.Context, key string) (providers.Doc, error) {
	if err := s.r.enter(ctx, "Store.Get"); err != nil {
		return providers.Doc{}, err
	}
	if err := providers.ValidateKey(key); err != nil {
		return providers.Doc{}, err
	}
	s.r.mu.Lock()
	defer s.r.mu.Unlock()
	d, ok := s.r.docs[key]
	if !ok {
		return providers.Doc{}, fmt.Errorf("fake store: get %q: %w", key, providers.ErrNotFound)
	}
	d.Value = bytes.Clone(d.Value)
	return d, nil
}

// Put implements providers.Store.
func (s *Store) Put(ctx context.Context, key string, value []byte, ifVersion int64) (int64, error) {
	c := Call{Provider: "Store", Method: "Put", Key: key, Args: []any{key, Value(bytes.Clone(value)), ifVersion}}
	return do(s.r, ctx, c, func(ctx context.Context) (int64, error) {
		if h := s.r.currentHooks().Store.Put; h != nil {
			return h(ctx, key, value, ifVersion, s.put)
		}
		return s.put(ctx, key, value, ifVersion)
	})
}

func (s *Store) put(ctx context.Context, key string, value []byte, ifVersion int64) (int64, error) {
	if err := s.r.enter(ctx, "Store.Put"); err != nil {
		return 0, err
	}
	if err := providers.ValidateKey(key); err != nil {
		return 0, err
	}
	if ifVersion < providers.AnyVersion {
		return 0, providers.Invalidf("fake store: put %q: version %d", key, ifVersion)
	}
	s.r.mu.Lock()
	defer s.r.mu.Unlock()
	cur, ok := s.r.docs[key]
	switch {
	case ifVersion == providers.AnyVersion:
	case ifVersion == 0 && ok:
		return 0, fmt.Errorf("fake store: create %q: key exists at version %d: %w", key, cur.Version, providers.ErrConflict)
	case ifVersion > 0 && !ok:
		return 0, fmt.Errorf("fake store: put %q at version %d: key does not exist: %w", key, ifVersion, providers.ErrConflict)
	case ifVersion > 0 && cur.Version != ifVersion:
		return 0, fmt.Errorf("fake store: put %q at version %d: stored version is %d: %w", key, ifVersion, cur.Version, providers.ErrConflict)
	}
	s.r.docSeq++
	if !ok {
		i, _ := slices.BinarySearch(s.r.docKeys, key)
		s.r.docKeys = slices.Insert(s.r.docKeys, i, key)
	}
	s.r.docs[key] = providers.Doc{Key: key, Value: bytes.Clone(value), Version: s.r.docSeq}
	return s.r.docSeq, nil
}

// Delete implements providers.Store.
func (s *Store) Delete(ctx context.Context, key string, ifVersion int64) error {
	c := Call{Provider: "Store", Method: "Delete", Key: key, Args: []any{key, ifVersion}}
	return do0(s.r, ctx, c, func(ctx context.Context) error {
		if h := s.r.currentHooks().Store.Delete; h != nil {
			return h(ctx, key, ifVersion, s.delete)
		}
		return s.delete(ctx, key, ifVersion)
	})
}

func (s *Store) delete(ctx context.Context, key string, ifVersion int64) error {
	if err := s.r.enter(ctx, "Store.Delete"); err != nil {
		return err
	}
	if err := providers.ValidateKey(key); err != nil {
		return err
	}
	if ifVersion == 0 || ifVersion < providers.AnyVersion {
		return providers.Invalidf("fake store: delete %q: version %d (use a positive version or AnyVersion)", key, ifVersion)
	}
	s.r.mu.Lock()
	defer s.r.mu.Unlock()
	cur, ok := s.r.docs[key]
	switch {
	case !ok && ifVersion == providers.AnyVersion:
		return nil
	case !ok:
		return fmt.Errorf("fake store: delete %q: %w", key, providers.ErrNotFound)
	case ifVersion != providers.AnyVersion && cur.Version != ifVersion:
		return fmt.Errorf("fake store: delete %q at version %d: stored version is %d: %w", key, ifVersion, cur.Version, providers.ErrConflict)
	}
	delete(s.r.docs, key)
	if i, found := slices.BinarySearch(s.r.docKeys, key); found {
		s.r.docKeys = slices.Delete(s.r.docKeys, i, i+1)
	}
	return nil
}

// listToken is the decoded form of a List continuation token.
type listToken struct {
	Prefix  string `json:"p"`
	Reverse bool   `json:"r"`
	After   string `json:"a"`
}

// List implements providers.Store.
func (s *Store) List(ctx context.Context, prefix string, opts providers.ListOptions) (providers.DocPage, error) {
	c := Call{Provider: "Store", Method: "List", Key: prefix, Args: []any{prefix, opts}}
	return do(s.r, ctx, c, func(ctx context.Context) (providers.DocPage, error) {
		if h := s.r.currentHooks().Store.List; h != nil {
			return h(ctx, prefix, opts, s.list)
		}
		return s.list(ctx, prefix, opts)
	})
}

func (s *Store) list(ctx context.Context, prefix string, opts providers.ListOptions) (providers.DocPage, error) {
	if err := s.r.enter(ctx, "Store.List"); err != nil {
		return providers.DocPage{}, err
	}
	if opts.Limit < 0 {
		return providers.DocPage{}, providers.Invalidf("fake store: list %q: negative limit %d", prefix, opts.Limit)
	}
	limit := opts.Limit
	if limit == 0 {
		limit = DefaultListLimit
	}
	var after *string
	if opts.Token != "" {
		var tok listToken
		raw, err := base64.RawURLEncoding.DecodeString(opts.Token)
		if err == nil {
			err = json.Unmarshal(raw, &tok)
		}
		if err != nil {
			return providers.DocPage{}, providers.Invalidf("fake store: list %q: malformed token", prefix)
		}
		if tok.Prefix != prefix || tok.Reverse != opts.Reverse {
			return providers.DocPage{}, providers.Invalidf("fake store: list %q: token belongs to another listing", prefix)
		}
		after = &tok.After
	}
	s.r.mu.Lock()
	defer s.r.mu.Unlock()
	// The keys are kept sorted: a page costs O(log n + limit), whatever
	// the number of documents.
	lo, _ := slices.BinarySearch(s.r.docKeys, prefix)
	// Keys from lo on are at least prefix, so those with it come first.
	hi := lo + sort.Search(len(s.r.docKeys)-lo, func(i int) bool { return !strings.HasPrefix(s.r.docKeys[lo+i], prefix) })
	inRange := s.r.docKeys[lo:hi]
	if after != nil {
		i, found := slices.BinarySearch(inRange, *after)
		if opts.Reverse {
			inRange = inRange[:i]
		} else {
			if found {
				i++
			}
			inRange = inRange[i:]
		}
	}
	keys := make([]string, 0, min(len(inRange), limit+1))
	for j := range min(len(inRange), limit+1) {
		if opts.Reverse {
			keys = append(keys, inRange[len(inRange)-1-j])
		} else {
			keys = append(keys, inRange[j])
		}
	}
	var page providers.DocPage
	for i, k := range keys {
		if i == limit {
			raw, _ := json.Marshal(listToken{Prefix: prefix, Reverse: opts.Reverse, After: keys[i-1]})
			page.Next = base64.RawURLEncoding.EncodeToString(raw)
			break
		}
		d := s.r.docs[k]
		d.Value = bytes.Clone(d.Value)
		page.Docs = append(page.Docs, d)
	}
	return page, nil
}
