// Package sqlitestore is a providers.Store on SQLite: a worked example of a
// third-party provider for the convox SDK. It uses modernc.org/sqlite, a
// pure-Go SQLite, so it builds without cgo.
//
// The whole provider is this file. Each method does one transaction, and
// each rule of the Store contract maps to one line of SQL or Go, marked
// "contract:" below:
//
//   - documents live in one table, keyed by the key's bytes (a BLOB, so
//     SQLite orders keys by memcmp: ascending byte order, as List must);
//   - versions come from one store-wide counter in a table of its own, so
//     a key deleted and created again never gets a version it had before;
//   - compare-and-swap reads the stored version and writes in one write
//     transaction (BEGIN IMMEDIATE), so two racing writers cannot both
//     win;
//   - a List token names the listing (prefix, order) and the last key
//     returned, so a listing resumes after that key whatever was inserted
//     or deleted meanwhile, and a token of another listing is refused.
package sqlitestore

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/convox-go/convox/providers"
)

// Page sizes of List: the size of a page when ListOptions.Limit is zero,
// and the largest page.
const (
	DefaultListLimit = 100
	MaxListLimit     = 1000
)

// Store is a providers.Store in one SQLite database file. It is safe for
// concurrent use, also by several processes sharing the file.
type Store struct {
	db *sql.DB
}

var _ providers.Store = (*Store)(nil)

const schema = `
CREATE TABLE IF NOT EXISTS docs (
	key     BLOB PRIMARY KEY,
	value   BLOB NOT NULL,
	version INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS version_counter (
	id INTEGER PRIMARY KEY CHECK (id = 1),
	n  INTEGER NOT NULL
);
INSERT OR IGNORE INTO version_counter (id, n) VALUES (1, 0);
`

// Open opens the store in the SQLite database file at path, creating the
// file (readable and writable by its owner only) and the tables when they
// do not exist. Close the store when done.
func Open(path string) (*Store, error) {
	if path == "" || strings.ContainsRune(path, '?') {
		return nil, providers.Invalidf("sqlitestore: open %q: the path is empty or holds a '?'", path)
	}
	// An absolute path never starts with "file:", which the driver would
	// read as a URI.
	path, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: open: %w", err)
	}
	// SQLite creates a missing file with the process's umask; create it
	// first so that documents are never readable by other users. The WAL
	// and shared-memory files SQLite adds take the database file's mode.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: open %s: %w", path, err)
	}
	f.Close()
	// _txlock=immediate makes every transaction take the write lock when
	// it begins, so a compare-and-swap never fails half way to upgrade a
	// read lock; busy_timeout makes a writer wait for another instead of
	// failing at once; WAL lets readers run beside the writer.
	q := url.Values{}
	q.Set("_txlock", "immediate")
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(NORMAL)")
	db, err := sql.Open("sqlite", path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: open %s: %w", path, err)
	}
	if _, err := db.Exec(schema); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlitestore: create the tables in %s: %w", path, wrapErr(err))
	}
	return &Store{db: db}, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// Get implements providers.Store.
func (s *Store) Get(ctx context.Context, key string) (providers.Doc, error) {
	if err := begin(ctx, key); err != nil {
		return providers.Doc{}, err
	}
	d := providers.Doc{Key: key}
	err := s.db.QueryRowContext(ctx, `SELECT value, version FROM docs WHERE key = ?`, []byte(key)).Scan(&d.Value, &d.Version)
	if errors.Is(err, sql.ErrNoRows) {
		// contract: a missing key returns ErrNotFound.
		return providers.Doc{}, fmt.Errorf("sqlitestore: get %q: %w", key, providers.ErrNotFound)
	}
	if err != nil {
		return providers.Doc{}, fmt.Errorf("sqlitestore: get %q: %w", key, wrapErr(err))
	}
	return d, nil
}

// Put implements providers.Store.
func (s *Store) Put(ctx context.Context, key string, value []byte, ifVersion int64) (int64, error) {
	if err := begin(ctx, key); err != nil {
		return 0, err
	}
	if ifVersion < providers.AnyVersion {
		return 0, providers.Invalidf("sqlitestore: put %q: version %d (use 0, a positive version or AnyVersion)", key, ifVersion)
	}
	if value == nil {
		value = []byte{} // the column is NOT NULL; an empty value is a value
	}
	var version int64
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		stored, found, err := storedVersion(ctx, tx, key)
		if err != nil {
			return err
		}
		// contract: compare and swap, in the transaction that writes.
		switch {
		case ifVersion == providers.AnyVersion:
		case ifVersion == 0 && found:
			return fmt.Errorf("create: the key exists at version %d: %w", stored, providers.ErrConflict)
		case ifVersion > 0 && !found:
			return fmt.Errorf("at version %d: the key does not exist: %w", ifVersion, providers.ErrConflict)
		case ifVersion > 0 && stored != ifVersion:
			return fmt.Errorf("at version %d: the stored version is %d: %w", ifVersion, stored, providers.ErrConflict)
		}
		// contract: versions come from a store-wide counter, so they
		// strictly increase for a key, also across a delete.
		if err := tx.QueryRowContext(ctx, `UPDATE version_counter SET n = n + 1 WHERE id = 1 RETURNING n`).Scan(&version); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO docs (key, value, version) VALUES (?, ?, ?)
			ON CONFLICT (key) DO UPDATE SET value = excluded.value, version = excluded.version`,
			[]byte(key), value, version)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("sqlitestore: put %q: %w", key, err)
	}
	return version, nil
}

// Delete implements providers.Store.
func (s *Store) Delete(ctx context.Context, key string, ifVersion int64) error {
	if err := begin(ctx, key); err != nil {
		return err
	}
	if ifVersion == 0 || ifVersion < providers.AnyVersion {
		return providers.Invalidf("sqlitestore: delete %q: version %d (use a positive version or AnyVersion)", key, ifVersion)
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		stored, found, err := storedVersion(ctx, tx, key)
		switch {
		case err != nil:
			return err
		case !found && ifVersion == providers.AnyVersion:
			return nil // contract: an unconditional delete of a missing key is no error
		case !found:
			return providers.ErrNotFound
		case ifVersion != providers.AnyVersion && stored != ifVersion:
			return fmt.Errorf("at version %d: the stored version is %d: %w", ifVersion, stored, providers.ErrConflict)
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM docs WHERE key = ?`, []byte(key))
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlitestore: delete %q: %w", key, err)
	}
	return nil
}

// listToken is the decoded form of a List continuation token: the listing
// it continues and the last key it returned.
type listToken struct {
	Prefix  string `json:"p"`
	Reverse bool   `json:"r"`
	After   string `json:"a"`
}

// List implements providers.Store. A zero Limit means DefaultListLimit; a
// larger one than MaxListLimit is lowered to it.
func (s *Store) List(ctx context.Context, prefix string, opts providers.ListOptions) (providers.DocPage, error) {
	if err := ctx.Err(); err != nil {
		return providers.DocPage{}, err
	}
	if opts.Limit < 0 {
		return providers.DocPage{}, providers.Invalidf("sqlitestore: list %q: negative limit %d", prefix, opts.Limit)
	}
	limit := min(opts.Limit, MaxListLimit)
	if limit == 0 {
		limit = DefaultListLimit
	}

	// Keys with the prefix are those in [prefix, end): end is the prefix
	// with its last byte below 0xff incremented (nil: no upper bound).
	where := `key >= ?`
	args := []any{[]byte(prefix)}
	if end := prefixEnd([]byte(prefix)); end != nil {
		where += ` AND key < ?`
		args = append(args, end)
	}
	if opts.Token != "" {
		tok, err := decodeToken(opts.Token)
		// contract: a token from another listing returns ErrInvalid.
		if err != nil || tok.Prefix != prefix || tok.Reverse != opts.Reverse {
			return providers.DocPage{}, providers.Invalidf("sqlitestore: list %q: the token does not continue this listing", prefix)
		}
		// contract: resume after the last key returned, not at an offset,
		// so inserts and deletes anywhere never skip or repeat a key.
		if opts.Reverse {
			where += ` AND key < ?`
		} else {
			where += ` AND key > ?`
		}
		args = append(args, []byte(tok.After))
	}
	order := `ASC`
	if opts.Reverse {
		order = `DESC`
	}
	args = append(args, limit+1) // one more than a page tells whether another follows
	rows, err := s.db.QueryContext(ctx, `SELECT key, value, version FROM docs WHERE `+where+` ORDER BY key `+order+` LIMIT ?`, args...)
	if err != nil {
		return providers.DocPage{}, fmt.Errorf("sqlitestore: list %q: %w", prefix, wrapErr(err))
	}
	defer rows.Close()
	var page providers.DocPage
	for rows.Next() {
		if len(page.Docs) == limit {
			page.Next = encodeToken(listToken{Prefix: prefix, Reverse: opts.Reverse, After: page.Docs[limit-1].Key})
			break
		}
		var key []byte
		var d providers.Doc
		if err := rows.Scan(&key, &d.Value, &d.Version); err != nil {
			return providers.DocPage{}, fmt.Errorf("sqlitestore: list %q: %w", prefix, wrapErr(err))
		}
		d.Key = string(key)
		page.Docs = append(page.Docs, d)
	}
	if err := rows.Err(); err != nil {
		return providers.DocPage{}, fmt.Errorf("sqlitestore: list %q: %w", prefix, wrapErr(err))
	}
	return page, nil
}

// begin checks what every keyed method checks before any side effect.
func begin(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	// contract: invalid keys return ErrInvalid; providers.ValidateKey is
	// the SDK's own check, shared by every Store.
	return providers.ValidateKey(key)
}

// inTx runs fn in one write transaction and commits it when fn returns
// nil. The errors it returns keep fn's sentinel and map SQLite's.
func (s *Store) inTx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return wrapErr(err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return wrapErr(err)
	}
	return wrapErr(tx.Commit())
}

// storedVersion returns the key's version and whether it exists.
func storedVersion(ctx context.Context, tx *sql.Tx, key string) (int64, bool, error) {
	var v int64
	err := tx.QueryRowContext(ctx, `SELECT version FROM docs WHERE key = ?`, []byte(key)).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	return v, err == nil, err
}

// wrapErr adds the SDK's sentinel to SQLite's errors, so the SDK retries
// what is temporary: a database locked for longer than busy_timeout is
// ErrUnavailable. Errors that already match a sentinel, and context
// errors, are returned as they are.
func wrapErr(err error) error {
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff { // the primary result code
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
			return fmt.Errorf("%w: %w", providers.ErrUnavailable, err)
		case sqlite3.SQLITE_READONLY, sqlite3.SQLITE_PERM, sqlite3.SQLITE_AUTH:
			return fmt.Errorf("%w: %w", providers.ErrPermission, err)
		}
	}
	return err
}

// prefixEnd returns the smallest byte string greater than every string
// with the prefix, or nil when there is none (an empty prefix, or one of
// 0xff bytes only).
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

func encodeToken(t listToken) string {
	raw, _ := json.Marshal(t) // a struct of strings and a bool always marshals
	return base64.RawURLEncoding.EncodeToString(raw)
}

func decodeToken(s string) (listToken, error) {
	var t listToken
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err == nil {
		err = json.Unmarshal(raw, &t)
	}
	return t, err
}
