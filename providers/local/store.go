package local

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/convox-go/convox/providers"
)

// Store is the rack's providers.Store: versioned documents with
// compare-and-swap in one bbolt file (store.db).
//
// Every operation opens the file, runs one transaction and closes it
// again, so the file lock bbolt takes is held only for the duration of
// that transaction: several programs can use the same store at once (for
// example a deploy bot and a command-line tool), their transactions are
// serialized by the lock, and a crash at any instant leaves the last
// committed transaction intact (bbolt's copy-on-write pages and
// checksummed meta pages, synced on commit).
//
// Versions come from one counter for the whole store, so a key deleted and
// created again never reuses a version.
type Store struct {
	path    string
	timeout time.Duration
	// mu serializes this process's transactions: flock polls while it
	// waits, so contention inside one process is resolved here instead.
	mu sync.RWMutex
}

var docsBucket = []byte("docs")

// Store listing page sizes.
const (
	defaultListLimit = 100
	maxListLimit     = 1000
)

// OpenStore opens (creating if needed) the store in dir without opening a
// whole rack. It is safe to use while a rack or another program has the
// same directory open. lockTimeout bounds the wait for another program's
// transaction; zero means 10 seconds.
func OpenStore(dir string, lockTimeout time.Duration) (*Store, error) {
	if lockTimeout <= 0 {
		lockTimeout = 10 * time.Second
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fsError("open store", err)
	}
	s := &Store{path: filepath.Join(dir, "store.db"), timeout: lockTimeout}
	err := s.update(context.Background(), func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(docsBucket)
		return err
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

var _ providers.Store = (*Store)(nil)

func (s *Store) open(readOnly bool) (*bolt.DB, error) {
	db, err := bolt.Open(s.path, 0o600, &bolt.Options{Timeout: s.timeout, ReadOnly: readOnly})
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return nil, fmt.Errorf("store %s is locked by another program: %w: %w", s.path, providers.ErrUnavailable, err)
		}
		return nil, fsError("open store "+s.path, err)
	}
	return db, nil
}

func (s *Store) view(ctx context.Context, fn func(*bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	db, err := s.open(true)
	if err != nil {
		return err
	}
	defer db.Close()
	return db.View(fn)
}

func (s *Store) update(ctx context.Context, fn func(*bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	db, err := s.open(false)
	if err != nil {
		return err
	}
	err = db.Update(fn)
	if cerr := db.Close(); err == nil && cerr != nil {
		err = fsError("close store", cerr)
	}
	return err
}

// encodeDoc stores a version before the value.
func encodeDoc(version int64, value []byte) []byte {
	b := make([]byte, 8+len(value))
	binary.BigEndian.PutUint64(b, uint64(version))
	copy(b[8:], value)
	return b
}

func decodeDoc(key, raw []byte) providers.Doc {
	return providers.Doc{
		Key:     string(key),
		Version: int64(binary.BigEndian.Uint64(raw[:8])),
		Value:   bytes.Clone(raw[8:]),
	}
}

// Get returns the document; a missing key returns ErrNotFound.
func (s *Store) Get(ctx context.Context, key string) (providers.Doc, error) {
	if err := providers.ValidateKey(key); err != nil {
		return providers.Doc{}, err
	}
	var doc providers.Doc
	err := s.view(ctx, func(tx *bolt.Tx) error {
		raw := tx.Bucket(docsBucket).Get([]byte(key))
		if raw == nil {
			return fmt.Errorf("store key %q: %w", key, providers.ErrNotFound)
		}
		doc = decodeDoc([]byte(key), raw)
		return nil
	})
	return doc, err
}

// Put writes value under key if the stored version equals ifVersion (0:
// create only; AnyVersion: unconditional) and returns the new version.
func (s *Store) Put(ctx context.Context, key string, value []byte, ifVersion int64) (int64, error) {
	if err := providers.ValidateKey(key); err != nil {
		return 0, err
	}
	if ifVersion < AnyVersion {
		return 0, providers.Invalidf("store version %d is negative", ifVersion)
	}
	var version int64
	err := s.update(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(docsBucket)
		raw := b.Get([]byte(key))
		switch {
		case ifVersion == AnyVersion:
		case ifVersion == 0 && raw != nil:
			return fmt.Errorf("create store key %q: it exists: %w", key, providers.ErrConflict)
		case ifVersion > 0 && raw == nil:
			return fmt.Errorf("put store key %q at version %d: the key does not exist: %w", key, ifVersion, providers.ErrConflict)
		case ifVersion > 0 && decodeDoc(nil, raw).Version != ifVersion:
			return fmt.Errorf("put store key %q at version %d: stored version is %d: %w", key, ifVersion, decodeDoc(nil, raw).Version, providers.ErrConflict)
		}
		seq, err := b.NextSequence()
		if err != nil {
			return err
		}
		version = int64(seq)
		return b.Put([]byte(key), encodeDoc(version, value))
	})
	return version, err
}

// AnyVersion is providers.AnyVersion, repeated for readability.
const AnyVersion = providers.AnyVersion

// Delete removes the document if its version equals ifVersion; with
// AnyVersion it is unconditional and a missing key is not an error.
func (s *Store) Delete(ctx context.Context, key string, ifVersion int64) error {
	if err := providers.ValidateKey(key); err != nil {
		return err
	}
	if ifVersion == 0 || ifVersion < AnyVersion {
		return providers.Invalidf("delete store key %q: version %d is not a stored version (use AnyVersion to delete unconditionally)", key, ifVersion)
	}
	return s.update(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(docsBucket)
		raw := b.Get([]byte(key))
		if ifVersion != AnyVersion {
			if raw == nil {
				return fmt.Errorf("delete store key %q: %w", key, providers.ErrNotFound)
			}
			if v := decodeDoc(nil, raw).Version; v != ifVersion {
				return fmt.Errorf("delete store key %q at version %d: stored version is %d: %w", key, ifVersion, v, providers.ErrConflict)
			}
		}
		if raw == nil {
			return nil
		}
		return b.Delete([]byte(key))
	})
}

// listToken is the decoded form of a List page token.
type listToken struct {
	Prefix  string `json:"p"`
	Reverse bool   `json:"r,omitempty"`
	After   string `json:"a"`
}

// List returns one page of the documents whose keys start with prefix in
// ascending key order (descending with Reverse).
func (s *Store) List(ctx context.Context, prefix string, opts providers.ListOptions) (providers.DocPage, error) {
	limit := opts.Limit
	switch {
	case limit < 0:
		return providers.DocPage{}, providers.Invalidf("list limit %d is negative", limit)
	case limit == 0:
		limit = defaultListLimit
	case limit > maxListLimit:
		limit = maxListLimit
	}
	var after []byte
	if opts.Token != "" {
		raw, err := base64.RawURLEncoding.DecodeString(opts.Token)
		var tok listToken
		if err == nil {
			err = json.Unmarshal(raw, &tok)
		}
		if err != nil || tok.Prefix != prefix || tok.Reverse != opts.Reverse {
			return providers.DocPage{}, providers.Invalidf("list token does not continue a listing of prefix %q", prefix)
		}
		after = []byte(tok.After)
	}
	p := []byte(prefix)
	var page providers.DocPage
	err := s.view(ctx, func(tx *bolt.Tx) error {
		c := tx.Bucket(docsBucket).Cursor()
		var k, v []byte
		switch {
		case !opts.Reverse && after == nil:
			k, v = c.Seek(p)
		case !opts.Reverse:
			k, v = c.Seek(after)
			if k != nil && bytes.Equal(k, after) {
				k, v = c.Next()
			}
		case after != nil:
			if k, _ = c.Seek(after); k == nil {
				k, v = c.Last()
			} else {
				k, v = c.Prev()
			}
		default:
			k, v = seekPrefixEnd(c, p)
		}
		for ; k != nil && bytes.HasPrefix(k, p); k, v = step(c, opts.Reverse) {
			if len(page.Docs) == limit {
				last := page.Docs[len(page.Docs)-1].Key
				raw, _ := json.Marshal(listToken{Prefix: prefix, Reverse: opts.Reverse, After: last})
				page.Next = base64.RawURLEncoding.EncodeToString(raw)
				return nil
			}
			page.Docs = append(page.Docs, decodeDoc(k, v))
		}
		return nil
	})
	return page, err
}

func step(c *bolt.Cursor, reverse bool) ([]byte, []byte) {
	if reverse {
		return c.Prev()
	}
	return c.Next()
}

// seekPrefixEnd positions c on the greatest key that starts with prefix
// (or on the last key smaller than every such key when there is none).
func seekPrefixEnd(c *bolt.Cursor, prefix []byte) ([]byte, []byte) {
	end := prefixEnd(prefix)
	if end == nil {
		return c.Last()
	}
	k, _ := c.Seek(end)
	if k == nil {
		return c.Last()
	}
	return c.Prev()
}

// prefixEnd returns the smallest key greater than every key with the
// prefix, or nil when there is none (empty prefix or all 0xff bytes).
func prefixEnd(prefix []byte) []byte {
	end := bytes.Clone(prefix)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}
