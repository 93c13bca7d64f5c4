package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestQuickstart runs the whole quickstart on a local rack: every step
// checks what it shows, so a nil error means each behaved as described.
func TestQuickstart(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the example app and runs real processes")
	}
	var out bytes.Buffer
	if err := run(t.Context(), &out, "app"); err != nil {
		t.Fatalf("quickstart: %v\n%s", err, out.String())
	}
	for _, want := range []string{`"hello from v1"`, `"hello from v2"`, "connection refused", "R4 is a copy of R1 and is active"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}
