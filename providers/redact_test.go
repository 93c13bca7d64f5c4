package providers_test

import (
	"bytes"
	"encoding/gob"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/convox-go/convox/providers"
)

const secretValue = "hunter2-Sup3rSecret"

// encodings renders a value every way a program might print or persist it.
var encodings = []struct {
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

func TestSecretValuesAreRedactedInEveryEncoding(t *testing.T) {
	d := validDesired()
	d.Env["TOKEN"] = secretValue
	run := providers.RunSpec{App: "shop", Release: "R1", Token: "t", Image: d.Image, Env: map[string]string{"TOKEN": secretValue, "MODE": "x"},
		Secret: []string{"TOKEN"}, Process: providers.Process{Name: "web"}, Command: []string{"env"}}
	creds := providers.Credentials{Registry: "registry.test", Username: "u", Password: secretValue, Expires: time.Unix(0, 0).UTC()}
	values := []struct {
		name string
		v    any
	}{
		{"Desired", d},
		{"*Desired", &d},
		{"RunSpec", run},
		{"*RunSpec", &run},
		{"Credentials", creds},
		{"*Credentials", &creds},
		{"a struct holding a Desired", struct{ D providers.Desired }{d}},
		{"a slice of RunSpec", []providers.RunSpec{run}},
	}
	for _, v := range values {
		for _, enc := range encodings {
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

func TestRedactedEncodingsKeepEverythingElse(t *testing.T) {
	d := validDesired()
	b, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"MODE": "production", "TOKEN": providers.Redacted}
	if diff := cmp.Diff(want, got["Env"]); diff != "" {
		t.Errorf("JSON Env (-want +got):\n%s", diff)
	}
	if d.Env["TOKEN"] != "hunter2" {
		t.Errorf("encoding changed the caller's map: TOKEN = %q", d.Env["TOKEN"])
	}
}

func TestDecodingARedactedEncodingIsRefused(t *testing.T) {
	d := validDesired()
	plain := validDesired()
	plain.Secret, plain.Env = nil, map[string]string{"MODE": "production"}
	creds := providers.Credentials{Registry: "r", Username: "u", Password: "p"}
	tests := []struct {
		name     string
		in       any
		out      func() any
		redacted bool
	}{
		{"Desired with a secret", d, func() any { return new(providers.Desired) }, true},
		{"Desired without secrets round-trips", plain, func() any { return new(providers.Desired) }, false},
		{"RunSpec with a secret", providers.RunSpec{App: "shop", Env: map[string]string{"K": "v"}, Secret: []string{"K"}}, func() any { return new(providers.RunSpec) }, true},
		{"Credentials with a password", creds, func() any { return new(providers.Credentials) }, true},
	}
	for _, tt := range tests {
		for _, codec := range []struct {
			name string
			rt   func(in, out any) error
		}{
			{"json", func(in, out any) error {
				b, err := json.Marshal(in)
				if err != nil {
					return err
				}
				return json.Unmarshal(b, out)
			}},
			{"gob", func(in, out any) error {
				var b bytes.Buffer
				if err := gob.NewEncoder(&b).Encode(in); err != nil {
					return err
				}
				return gob.NewDecoder(&b).Decode(out)
			}},
		} {
			t.Run(tt.name+"/"+codec.name, func(t *testing.T) {
				out := tt.out()
				err := codec.rt(tt.in, out)
				if tt.redacted {
					if !errors.Is(err, providers.ErrInvalid) {
						t.Fatalf("decode = %v, want ErrInvalid: a redacted copy must not decode as the real thing", err)
					}
					return
				}
				if err != nil {
					t.Fatalf("decode: %v", err)
				}
				if diff := cmp.Diff(tt.in, *(out.(*providers.Desired))); diff != "" {
					t.Errorf("round trip (-want +got):\n%s", diff)
				}
			})
		}
	}
}
