package convox_test

import (
	"bytes"
	"encoding"
	"encoding/gob"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/google/go-cmp/cmp"

	"github.com/convox-go/convox"
	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/fake"
)

const secretValue = "hunter2-Sup3rSecret"

// secretEncodings renders a value every way a program might print, log or
// persist it.
var secretEncodings = []struct {
	name   string
	encode func(v any) (string, error)
}{
	{"fmt %v", func(v any) (string, error) { return fmt.Sprintf("%v", v), nil }},
	{"fmt %+v", func(v any) (string, error) { return fmt.Sprintf("%+v", v), nil }},
	{"fmt %#v", func(v any) (string, error) { return fmt.Sprintf("%#v", v), nil }},
	{"fmt %s", func(v any) (string, error) { return fmt.Sprintf("%s", v), nil }},
	{"fmt %q", func(v any) (string, error) { return fmt.Sprintf("%q", v), nil }},
	{"json", func(v any) (string, error) {
		b, err := json.Marshal(v)
		return string(b), err
	}},
	{"gob", func(v any) (string, error) {
		var b bytes.Buffer
		err := gob.NewEncoder(&b).Encode(v)
		return b.String(), err
	}},
	{"slog JSON handler", func(v any) (string, error) {
		var b bytes.Buffer
		slog.New(slog.NewJSONHandler(&b, nil)).Info("m", "v", v)
		return b.String(), nil
	}},
	{"slog text handler", func(v any) (string, error) {
		var b bytes.Buffer
		slog.New(slog.NewTextHandler(&b, nil)).Info("m", "v", v)
		return b.String(), nil
	}},
}

// TestSecretsStaySecretInEveryEncoding deploys a release with a secret
// and renders every type that holds the secret value in every encoding:
// none of them contains it.
func TestSecretsStaySecretInEveryEncoding(t *testing.T) {
	type value struct {
		name string
		v    any
	}
	var values []value
	gob.Register(providers.Desired{}) // fake.Call holds its arguments as []any
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, nil)
		ctx := t.Context()
		w.deployV1(ctx)
		w.rack.ResetCalls()
		rel, err := w.c.App("web").SetEnv(ctx, nil, map[string]convox.Secret{"TOKEN": secretValue}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := string(rel.Secrets["TOKEN"]); got != secretValue {
			t.Fatalf("the release read back has TOKEN %q, want the real value: the store must keep it", got)
		}
		var desired providers.Desired
		var apply fake.Call
		for _, c := range w.rack.Calls() {
			if c.Name() == "Scheduler.Apply" {
				apply, desired = c, c.Args[0].(providers.Desired)
			}
		}
		if desired.Env["TOKEN"] != secretValue {
			t.Fatalf("the scheduler got TOKEN %q, want the real value", desired.Env["TOKEN"])
		}
		spec := convox.ReleaseSpec{Secrets: map[string]convox.Secret{"TOKEN": secretValue}}
		run := providers.RunSpec{App: "web", Env: desired.Env, Secret: desired.Secret, Process: desired.Processes[0]}
		values = []value{
			{"Secret", convox.Secret(secretValue)},
			{"*Secret", new(convox.Secret(secretValue))},
			{"map of Secret", spec.Secrets},
			{"Release", *rel},
			{"*Release", rel},
			{"ReleaseSpec", spec},
			{"providers.Desired", desired},
			{"providers.RunSpec", run},
			{"fake.Call of Apply", apply},
		}
	})
	for _, v := range values {
		for _, enc := range secretEncodings {
			t.Run(v.name+"/"+enc.name, func(t *testing.T) {
				out, err := enc.encode(v.v)
				if err != nil {
					t.Fatalf("encode: %v", err)
				}
				if strings.Contains(out, secretValue) {
					t.Errorf("the encoding holds the secret value:\n%s", out)
				}
			})
		}
	}
}

// TestSecretDecoding checks that a Secret decodes from a real value but
// never from a redacted encoding.
func TestSecretDecoding(t *testing.T) {
	tests := []struct {
		name   string
		decode func(s *convox.Secret) error
		want   convox.Secret
		err    error
	}{
		{"JSON of a real value", func(s *convox.Secret) error { return json.Unmarshal([]byte(`"s3cr3t"`), s) }, "s3cr3t", nil},
		{"JSON of a redacted value is refused", func(s *convox.Secret) error { return json.Unmarshal([]byte(`"<redacted>"`), s) }, "", providers.ErrInvalid},
		{"JSON of a non-string is refused", func(s *convox.Secret) error { return json.Unmarshal([]byte(`42`), s) }, "", nil},
		{"text of a real value", func(s *convox.Secret) error { return s.UnmarshalText([]byte("s3cr3t")) }, "s3cr3t", nil},
		{"text of a redacted value is refused", func(s *convox.Secret) error { return s.UnmarshalText([]byte("<redacted>")) }, "", providers.ErrInvalid},
		{"gob of an encoded Secret is refused", func(s *convox.Secret) error {
			var b bytes.Buffer
			if err := gob.NewEncoder(&b).Encode(convox.Secret("s3cr3t")); err != nil {
				return err
			}
			return gob.NewDecoder(&b).Decode(s)
		}, "", providers.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s convox.Secret
			err := tt.decode(&s)
			switch {
			case tt.want != "":
				if err != nil {
					t.Fatalf("decode: %v", err)
				}
			case tt.err != nil:
				if !errors.Is(err, tt.err) {
					t.Fatalf("decode = %v, want %v", err, tt.err)
				}
			default:
				if err == nil {
					t.Fatal("decode = nil, want an error")
				}
			}
			if diff := cmp.Diff(string(tt.want), string(s)); diff != "" {
				t.Errorf("decoded value (-want +got):\n%s", diff)
			}
		})
	}
}

// TestSecretMarshalText checks the text form used by encoders that do
// not know JSON (map keys, flags, YAML libraries).
func TestSecretMarshalText(t *testing.T) {
	var m encoding.TextMarshaler = convox.Secret(secretValue)
	b, err := m.MarshalText()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(providers.Redacted, string(b)); diff != "" {
		t.Errorf("MarshalText (-want +got):\n%s", diff)
	}
}
