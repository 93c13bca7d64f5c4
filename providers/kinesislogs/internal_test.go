package kinesislogs

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestCompareSeq(t *testing.T) {
	for _, tc := range []struct {
		name string
		a, b string
		want int
	}{
		{"equal", "49590338271490256608559692538361571095921575989136588898", "49590338271490256608559692538361571095921575989136588898", 0},
		{"a longer number is greater", "100", "99", 1},
		{"same length compares digits", "123", "124", -1},
		{"leading zeros do not count", "000000000000000000042", "42", 0},
		{"zero-padded numbers compare by value", "000000000000000000009", "10", -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, compareSeq(tc.a, tc.b)); diff != "" {
				t.Errorf("compareSeq(%q, %q) (-want +got):\n%s", tc.a, tc.b, diff)
			}
		})
	}
}

func TestDeleted(t *testing.T) {
	// shard-0 split into shard-1 and shard-2; shard-2 merged with shard-3
	// into shard-4.
	set := shardSet{parents: map[string][]string{
		"shard-1": {"shard-0"},
		"shard-2": {"shard-0"},
		"shard-4": {"shard-2", "shard-3"},
	}}
	for _, tc := range []struct {
		name        string
		marks       map[string]map[string]string
		shard, seq  string
		wantDeleted bool
	}{
		{"no marker hides nothing", nil, "shard-1", "5", false},
		{"a record before the marker of its shard is hidden", map[string]map[string]string{"shard-1": {"web": "10"}}, "shard-1", "5", true},
		{"a record after the marker of its shard is visible", map[string]map[string]string{"shard-1": {"web": "10"}}, "shard-1", "15", false},
		{"a marker of another app hides nothing", map[string]map[string]string{"shard-1": {"api": "10"}}, "shard-1", "5", false},
		{"a marker in a child hides every record of the parent", map[string]map[string]string{"shard-1": {"web": "10"}}, "shard-0", "99", true},
		{"a marker in a grandchild hides every record of the grandparent", map[string]map[string]string{"shard-4": {"web": "10"}}, "shard-0", "99", true},
		{"a marker in a parent hides nothing of the children", map[string]map[string]string{"shard-0": {"web": "10"}}, "shard-1", "5", false},
		{"a marker in a sibling hides nothing", map[string]map[string]string{"shard-2": {"web": "10"}}, "shard-1", "5", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := deleted(set, tc.marks, "web", tc.shard, tc.seq); got != tc.wantDeleted {
				t.Errorf("deleted = %v, want %v", got, tc.wantDeleted)
			}
		})
	}
}
