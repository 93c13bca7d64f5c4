// Package convoxtest builds SDK clients over fake racks (package
// providers/fake) for tests, in one call:
//
//	r := fake.New(nil)
//	c := convoxtest.NewClient(t, r, nil)
//
// The rack is r.ConvoxRack(); NewClient adds failing the test at once
// when the client cannot be created.
package convoxtest

import (
	"testing"

	"github.com/convox-go/convox"
	"github.com/convox-go/convox/providers/fake"
)

// NewClient returns a Client over r.ConvoxRack() configured by opts (nil means
// defaults). A Client that cannot be created fails the test at once.
func NewClient(t testing.TB, r *fake.Rack, opts *convox.Options) *convox.Client {
	t.Helper()
	c, err := convox.New(r.ConvoxRack(), opts)
	if err != nil {
		t.Fatalf("convoxtest: convox.New: %v", err)
	}
	return c
}
