package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestMigrations runs every migration on local racks: each step checks
// what it shows, so a nil error means each behaved as described.
func TestMigrations(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the example app and runs real processes")
	}
	var out bytes.Buffer
	if err := run(t.Context(), &out, "../quickstart/app", "registry", "balancer", "logs"); err != nil {
		t.Fatalf("migrations: %v\n%s", err, out.String())
	}
	for _, want := range []string{"2 images, 2 copied", "with the old registry shut down", "0 failed; new endpoint", "the new backend holds the 4 lines"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}
