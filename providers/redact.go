package providers

import (
	"bytes"
	"encoding/gob"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
)

// Redacted replaces a secret value in every encoding of a type that holds
// one: fmt verbs, JSON, gob and log/slog.
const Redacted = "<redacted>"

// Secret values in Desired, RunSpec and Credentials.
//
// Every encoding of these types replaces secret values with Redacted: the
// environment variables named in Secret, and a password. Decoding (JSON or
// gob) refuses an encoding that holds Redacted in place of a secret value,
// so a redacted copy can never be applied as if it were the real one.
//
// A provider that must keep the real values — the local scheduler persists
// the desired state of each app in an owner-only file to restart its
// processes after a reopen — encodes a type of its own defined on the same
// struct (type stored providers.Desired), which has none of these methods.
// Such a provider documents where the values rest and who can read them.

var (
	_ slog.LogValuer   = Desired{}
	_ json.Marshaler   = Desired{}
	_ gob.GobEncoder   = Desired{}
	_ slog.LogValuer   = RunSpec{}
	_ json.Marshaler   = RunSpec{}
	_ gob.GobEncoder   = RunSpec{}
	_ slog.LogValuer   = Credentials{}
	_ json.Marshaler   = Credentials{}
	_ gob.GobEncoder   = Credentials{}
	_ json.Unmarshaler = (*Desired)(nil)
	_ gob.GobDecoder   = (*Desired)(nil)
	_ json.Unmarshaler = (*RunSpec)(nil)
	_ gob.GobDecoder   = (*RunSpec)(nil)
	_ json.Unmarshaler = (*Credentials)(nil)
	_ gob.GobDecoder   = (*Credentials)(nil)
)

// redactEnv returns a copy of env in which the values of the secret names
// are Redacted; env itself is not changed.
func redactEnv(env map[string]string, secret []string) map[string]string {
	if len(secret) == 0 || env == nil {
		return env
	}
	out := maps.Clone(env)
	for _, k := range secret {
		if _, ok := out[k]; ok {
			out[k] = Redacted
		}
	}
	return out
}

// refuseRedacted returns an error when a secret value of env is Redacted:
// the encoding was a redacted copy and holds no secret.
func refuseRedacted(kind string, env map[string]string, secret []string) error {
	for _, k := range secret {
		if v, ok := env[k]; ok && v == Redacted {
			return Invalidf("decode %s: secret %s was redacted when it was encoded; an encoding never carries secret values", kind, k)
		}
	}
	return nil
}

func gobEncode(v any) ([]byte, error) {
	var b bytes.Buffer
	if err := gob.NewEncoder(&b).Encode(v); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func gobDecode(data []byte, v any) error {
	return gob.NewDecoder(bytes.NewReader(data)).Decode(v)
}

// desiredPlain is Desired without its methods, for the default encodings.
type desiredPlain Desired

func (d Desired) redacted() desiredPlain {
	d.Env = redactEnv(d.Env, d.Secret)
	return desiredPlain(d)
}

// MarshalJSON encodes d with the default field names, secret values
// replaced by Redacted.
func (d Desired) MarshalJSON() ([]byte, error) { return json.Marshal(d.redacted()) }

// UnmarshalJSON decodes d, refusing an encoding whose secret values were
// redacted (with an error matching ErrInvalid).
func (d *Desired) UnmarshalJSON(data []byte) error {
	var p desiredPlain
	if err := json.Unmarshal(data, &p); err != nil {
		return err
	}
	if err := refuseRedacted("desired state", p.Env, p.Secret); err != nil {
		return err
	}
	*d = Desired(p)
	return nil
}

// GobEncode encodes d with secret values replaced by Redacted.
func (d Desired) GobEncode() ([]byte, error) { return gobEncode(d.redacted()) }

// GobDecode decodes d, refusing an encoding whose secret values were
// redacted (with an error matching ErrInvalid).
func (d *Desired) GobDecode(data []byte) error {
	var p desiredPlain
	if err := gobDecode(data, &p); err != nil {
		return err
	}
	if err := refuseRedacted("desired state", p.Env, p.Secret); err != nil {
		return err
	}
	*d = Desired(p)
	return nil
}

// LogValue describes d for log/slog without env values: app, release,
// token, image, the formation and the number of variables and secrets.
func (d Desired) LogValue() slog.Value {
	names := make([]string, 0, len(d.Processes))
	for _, p := range d.Processes {
		names = append(names, fmt.Sprintf("%s=%d", p.Name, p.Count))
	}
	return slog.GroupValue(
		slog.String("app", d.App), slog.String("release", d.Release), slog.String("token", d.Token),
		slog.String("image", d.Image.Ref()), slog.String("processes", strings.Join(names, " ")),
		slog.Int("env", len(d.Env)), slog.Int("secrets", len(d.Secret)),
	)
}

// runSpecPlain is RunSpec without its methods, for the default encodings.
type runSpecPlain RunSpec

func (r RunSpec) redacted() runSpecPlain {
	r.Env = redactEnv(r.Env, r.Secret)
	return runSpecPlain(r)
}

// MarshalJSON encodes r with the default field names, secret values
// replaced by Redacted.
func (r RunSpec) MarshalJSON() ([]byte, error) { return json.Marshal(r.redacted()) }

// UnmarshalJSON decodes r, refusing an encoding whose secret values were
// redacted (with an error matching ErrInvalid).
func (r *RunSpec) UnmarshalJSON(data []byte) error {
	var p runSpecPlain
	if err := json.Unmarshal(data, &p); err != nil {
		return err
	}
	if err := refuseRedacted("run spec", p.Env, p.Secret); err != nil {
		return err
	}
	*r = RunSpec(p)
	return nil
}

// GobEncode encodes r with secret values replaced by Redacted.
func (r RunSpec) GobEncode() ([]byte, error) { return gobEncode(r.redacted()) }

// GobDecode decodes r, refusing an encoding whose secret values were
// redacted (with an error matching ErrInvalid).
func (r *RunSpec) GobDecode(data []byte) error {
	var p runSpecPlain
	if err := gobDecode(data, &p); err != nil {
		return err
	}
	if err := refuseRedacted("run spec", p.Env, p.Secret); err != nil {
		return err
	}
	*r = RunSpec(p)
	return nil
}

// LogValue describes r for log/slog without env values.
func (r RunSpec) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("app", r.App), slog.String("release", r.Release), slog.String("token", r.Token),
		slog.String("process", r.Process.Name), slog.Any("command", slices.Clone(r.Command)),
		slog.Int("env", len(r.Env)), slog.Int("secrets", len(r.Secret)),
	)
}

// credentialsPlain is Credentials without its methods.
type credentialsPlain Credentials

func (c Credentials) redacted() credentialsPlain {
	if c.Password != "" {
		c.Password = Redacted
	}
	return credentialsPlain(c)
}

// MarshalJSON encodes c with the password replaced by Redacted.
func (c Credentials) MarshalJSON() ([]byte, error) { return json.Marshal(c.redacted()) }

// UnmarshalJSON decodes c, refusing an encoding whose password was
// redacted (with an error matching ErrInvalid).
func (c *Credentials) UnmarshalJSON(data []byte) error {
	var p credentialsPlain
	if err := json.Unmarshal(data, &p); err != nil {
		return err
	}
	if p.Password == Redacted {
		return Invalidf("decode credentials: the password was redacted when they were encoded")
	}
	*c = Credentials(p)
	return nil
}

// GobEncode encodes c with the password replaced by Redacted.
func (c Credentials) GobEncode() ([]byte, error) { return gobEncode(c.redacted()) }

// GobDecode decodes c, refusing an encoding whose password was redacted.
func (c *Credentials) GobDecode(data []byte) error {
	var p credentialsPlain
	if err := gobDecode(data, &p); err != nil {
		return err
	}
	if p.Password == Redacted {
		return Invalidf("decode credentials: the password was redacted when they were encoded")
	}
	*c = Credentials(p)
	return nil
}

// LogValue describes c for log/slog without the password.
func (c Credentials) LogValue() slog.Value {
	p := ""
	if c.Password != "" {
		p = Redacted
	}
	return slog.GroupValue(slog.String("registry", c.Registry), slog.String("username", c.Username),
		slog.String("password", p), slog.Time("expires", c.Expires))
}
