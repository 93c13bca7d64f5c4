package convox_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/convox-go/convox"
	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/fake"
)

// FuzzCreateRelease feeds arbitrary image references, env names and
// process names to CreateRelease: it never panics, bad input fails with
// ErrInvalid or ErrNotFound, and a failure writes no release.
func FuzzCreateRelease(f *testing.F) {
	f.Add("web:v1", "MODE", "web", 1, 8080)
	f.Add("web@sha256:0000", "1BAD", "Web", -1, 70000)
	f.Add("", "", "", 0, 0)
	f.Add("web:v1 extra", "A_B", "a-b", 2, 1)
	f.Add("web:v1", "MODE", "web", int(1e9), 8080)
	f.Add("web:v1", "A=B", "web", 1<<40, 8080)
	f.Fuzz(func(t *testing.T, image, envName, process string, count, port int) {
		r := fake.New(nil)
		c, err := convox.New(r.ConvoxRack(), nil)
		if err != nil {
			t.Fatal(err)
		}
		ctx := t.Context()
		if _, err := c.CreateApp(ctx, "web", nil); err != nil {
			t.Fatal(err)
		}
		r.Push("web", "v1", &fake.ImageConfig{Entrypoint: []string{"/x"}})
		r.ResetCalls()
		_, err = c.App("web").CreateRelease(ctx, convox.ReleaseSpec{
			Image:     image,
			Env:       map[string]string{envName: "v"},
			Processes: []convox.Process{{Name: process, Count: count, Port: port}},
		})
		if err == nil {
			return
		}
		if !errors.Is(err, providers.ErrInvalid) && !errors.Is(err, providers.ErrNotFound) {
			t.Fatalf("CreateRelease = %v, want ErrInvalid or ErrNotFound", err)
		}
		for _, call := range r.Calls() {
			if call.Name() == "Store.Put" && strings.HasPrefix(call.Key, "release/") {
				t.Fatalf("a failed CreateRelease wrote %s", call.Key)
			}
		}
	})
}

// FuzzLogFilter checks that a filter keeps exactly the lines containing it.
func FuzzLogFilter(f *testing.F) {
	f.Add("panic", "panic: boom|ok|PANIC")
	f.Add("", "a|b")
	f.Add("|", "x")
	f.Add("ü", "über|uber")
	f.Fuzz(func(t *testing.T, filter, lines string) {
		r := fake.New(nil)
		c, _ := convox.New(r.ConvoxRack(), nil)
		ctx := t.Context()
		c.CreateApp(ctx, "web", nil)
		msgs := strings.Split(lines, "|")
		var es []providers.LogEntry
		for _, m := range msgs {
			es = append(es, providers.LogEntry{App: "web", Stream: "s", Process: "web", Message: m})
		}
		if err := r.Logs().Write(ctx, es); err != nil {
			t.Fatal(err)
		}
		want := 0
		for _, m := range msgs {
			if strings.Contains(m, filter) {
				want++
			}
		}
		got := 0
		for e, err := range c.App("web").Logs(ctx, convox.LogQuery{Filter: filter}) {
			if err != nil && len(filter) > providers.MaxLogFilter && errors.Is(err, providers.ErrInvalid) {
				return // over the bound: refused before any read
			}
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(e.Message, filter) {
				t.Fatalf("filter %q let %q through", filter, e.Message)
			}
			got++
		}
		if got != want {
			t.Fatalf("filter %q kept %d of %d matching lines", filter, got, want)
		}
	})
}
