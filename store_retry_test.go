package convox

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/convox-go/convox/providers"
)

// memStore is a minimal Store: versions count the writes of a key.
type memStore map[string]providers.Doc

func (m memStore) Get(_ context.Context, key string) (providers.Doc, error) {
	d, ok := m[key]
	if !ok {
		return providers.Doc{}, providers.ErrNotFound
	}
	return d, nil
}

func (m memStore) Put(_ context.Context, key string, value []byte, ifVersion int64) (int64, error) {
	d, ok := m[key]
	if ifVersion != providers.AnyVersion && (ifVersion == 0) == ok || ok && ifVersion > 0 && d.Version != ifVersion {
		return 0, providers.ErrConflict
	}
	m[key] = providers.Doc{Key: key, Value: value, Version: d.Version + 1}
	return d.Version + 1, nil
}

func (m memStore) Delete(_ context.Context, key string, ifVersion int64) error {
	d, ok := m[key]
	switch {
	case !ok && ifVersion == providers.AnyVersion:
		return nil
	case !ok:
		return providers.ErrNotFound
	case ifVersion != providers.AnyVersion && d.Version != ifVersion:
		return providers.ErrConflict
	}
	delete(m, key)
	return nil
}

func (m memStore) List(_ context.Context, prefix string, _ providers.ListOptions) (providers.DocPage, error) {
	var p providers.DocPage
	for k, d := range m {
		if strings.HasPrefix(k, prefix) {
			p.Docs = append(p.Docs, d)
		}
	}
	return p, nil
}

// flakyStore fails its next calls with the scripted errors; a fault with
// wrote set lets the call through to the store before reporting the error,
// as a backend does when the response of a successful write is lost.
type flakyStore struct {
	providers.Store
	faults []storeFault
	calls  int
}

type storeFault struct {
	err   error
	wrote bool
}

func (f *flakyStore) next() (storeFault, bool) {
	f.calls++
	if len(f.faults) == 0 {
		return storeFault{}, false
	}
	ft := f.faults[0]
	f.faults = f.faults[1:]
	return ft, true
}

func (f *flakyStore) Get(ctx context.Context, key string) (providers.Doc, error) {
	if ft, ok := f.next(); ok {
		return providers.Doc{}, ft.err
	}
	return f.Store.Get(ctx, key)
}

func (f *flakyStore) Put(ctx context.Context, key string, value []byte, ifVersion int64) (int64, error) {
	ft, ok := f.next()
	if ok && !ft.wrote {
		return 0, ft.err
	}
	v, err := f.Store.Put(ctx, key, value, ifVersion)
	if ok {
		return 0, ft.err
	}
	return v, err
}

func (f *flakyStore) Delete(ctx context.Context, key string, ifVersion int64) error {
	ft, ok := f.next()
	if ok && !ft.wrote {
		return ft.err
	}
	err := f.Store.Delete(ctx, key, ifVersion)
	if ok {
		return ft.err
	}
	return err
}

func (f *flakyStore) List(ctx context.Context, prefix string, opts providers.ListOptions) (providers.DocPage, error) {
	if ft, ok := f.next(); ok {
		return providers.DocPage{}, ft.err
	}
	return f.Store.List(ctx, prefix, opts)
}

// TestRetryingStore: the rack's store retries temporary errors of each
// call, gives up on others at once, and retries a conditional write as it
// was asked, so a lost success surfaces as the conflict a caller handles.
func TestRetryingStore(t *testing.T) {
	ctx := context.Background()
	unavailable := fmt.Errorf("store: %w", providers.ErrUnavailable)
	invalid := fmt.Errorf("store: %w", providers.ErrInvalid)
	type result struct {
		Calls int
		Err   error
	}
	tests := []struct {
		name   string
		faults []storeFault
		call   func(s providers.Store) error
		want   result
	}{
		{
			name:   "get retries temporary errors",
			faults: []storeFault{{err: unavailable}, {err: unavailable}},
			call:   func(s providers.Store) error { _, err := s.Get(ctx, "app/web"); return err },
			want:   result{Calls: 3},
		},
		{
			name:   "get does not retry other errors",
			faults: []storeFault{{err: invalid}},
			call:   func(s providers.Store) error { _, err := s.Get(ctx, "app/web"); return err },
			want:   result{Calls: 1, Err: providers.ErrInvalid},
		},
		{
			name:   "list retries temporary errors",
			faults: []storeFault{{err: unavailable}},
			call: func(s providers.Store) error {
				_, err := s.List(ctx, "app/", providers.ListOptions{})
				return err
			},
			want: result{Calls: 2},
		},
		{
			name:   "unconditional put retries",
			faults: []storeFault{{err: unavailable, wrote: true}},
			call: func(s providers.Store) error {
				_, err := s.Put(ctx, "app/web", []byte("{}"), providers.AnyVersion)
				return err
			},
			want: result{Calls: 2},
		},
		{
			name:   "conditional put that wrote conflicts on retry",
			faults: []storeFault{{err: unavailable, wrote: true}},
			call:   func(s providers.Store) error { _, err := s.Put(ctx, "app/web", []byte("{}"), 1); return err },
			want:   result{Calls: 2, Err: providers.ErrConflict},
		},
		{
			name:   "create that wrote conflicts on retry",
			faults: []storeFault{{err: unavailable, wrote: true}},
			call:   func(s providers.Store) error { _, err := s.Put(ctx, "app/new", []byte("{}"), 0); return err },
			want:   result{Calls: 2, Err: providers.ErrConflict},
		},
		{
			name:   "conditional delete that wrote reports not found on retry",
			faults: []storeFault{{err: unavailable, wrote: true}},
			call:   func(s providers.Store) error { return s.Delete(ctx, "app/web", 1) },
			want:   result{Calls: 2, Err: providers.ErrNotFound},
		},
		{
			name:   "conditional delete retries a call that did not write",
			faults: []storeFault{{err: unavailable}},
			call:   func(s providers.Store) error { return s.Delete(ctx, "app/web", 1) },
			want:   result{Calls: 2},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			inner := memStore{}
			if _, err := inner.Put(ctx, "app/web", []byte("{}"), 0); err != nil {
				t.Fatal(err)
			}
			f := &flakyStore{Store: inner, faults: tc.faults}
			c, err := New(Rack{Registry: nopRegistry{}, Scheduler: baseScheduler{}, Logs: nopLogs{}, Store: f}, nil)
			if err != nil {
				t.Fatal(err)
			}
			err = tc.call(c.rack.store)
			got := result{Calls: f.calls, Err: err}
			if tc.want.Err != nil && errors.Is(err, tc.want.Err) {
				got.Err = tc.want.Err
			}
			if diff := cmp.Diff(tc.want, got, cmp.Comparer(func(a, b error) bool { return a == b })); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
		})
	}
}
