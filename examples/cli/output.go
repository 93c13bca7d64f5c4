package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/convox-go/convox"
	"github.com/convox-go/convox/providers"
)

// The JSON documents of --json. Field names are part of the CLI's
// interface: add fields, never rename them.

// appJSON is an app.
type appJSON struct {
	Name        string            `json:"name"`
	Active      string            `json:"active"`
	LastHealthy string            `json:"lastHealthy"`
	Latest      string            `json:"latest"`
	Deploying   string            `json:"deploying"`
	Created     time.Time         `json:"created"`
	Endpoints   map[string]string `json:"endpoints"`
	// Served is false when the command opened the local rack itself: the
	// endpoints stop answering when it exits.
	Served bool `json:"served"`
}

func toAppJSON(a *convox.App) appJSON {
	eps := a.Endpoints
	if eps == nil {
		eps = map[string]string{}
	}
	return appJSON{Name: a.Name, Active: a.Active, LastHealthy: a.LastHealthy, Latest: a.Latest,
		Deploying: a.Deploying, Created: a.Created, Endpoints: eps, Served: true}
}

// processJSON is a process type of a release.
type processJSON struct {
	Name    string   `json:"name"`
	Count   int      `json:"count"`
	Port    int      `json:"port"`
	Command []string `json:"command"`
	Health  string   `json:"health"`
}

// releaseJSON is a release; secret values are redacted.
type releaseJSON struct {
	App         string            `json:"app"`
	ID          string            `json:"id"`
	Parent      string            `json:"parent"`
	Status      string            `json:"status"`
	Healthy     bool              `json:"healthy"`
	Reason      string            `json:"reason"`
	ImageRef    string            `json:"imageRef"`
	Digest      string            `json:"digest"`
	Env         map[string]string `json:"env"`
	Secrets     map[string]string `json:"secrets"`
	Processes   []processJSON     `json:"processes"`
	Description string            `json:"description"`
	Created     time.Time         `json:"created"`
	Promoted    *time.Time        `json:"promoted"`
}

const redacted = "<redacted>"

func toReleaseJSON(r *convox.Release) releaseJSON {
	out := releaseJSON{
		App: r.App, ID: r.ID, Parent: r.Parent, Status: string(r.Status), Healthy: r.Healthy, Reason: r.Reason,
		ImageRef: r.ImageRef, Digest: r.Image.Digest, Env: map[string]string{}, Secrets: map[string]string{},
		Processes: []processJSON{}, Description: r.Description, Created: r.Created,
	}
	maps.Copy(out.Env, r.Env)
	for k := range r.Secrets {
		out.Secrets[k] = redacted
	}
	for _, p := range r.Processes {
		cmd := p.Command
		if cmd == nil {
			cmd = []string{}
		}
		out.Processes = append(out.Processes, processJSON{Name: p.Name, Count: p.Count, Port: p.Port, Command: cmd, Health: p.Health.Path})
	}
	if !r.Promoted.IsZero() {
		t := r.Promoted
		out.Promoted = &t
	}
	return out
}

// envJSON is one environment variable; a secret's value is redacted.
type envJSON struct {
	Name   string `json:"name"`
	Value  string `json:"value"`
	Secret bool   `json:"secret"`
}

// taskJSON is a task of ps.
type taskJSON struct {
	ID       string     `json:"id"`
	Process  string     `json:"process"`
	Release  string     `json:"release"`
	State    string     `json:"state"`
	Address  string     `json:"address"`
	Started  *time.Time `json:"started"`
	Stopped  *time.Time `json:"stopped"`
	ExitCode *int       `json:"exitCode"`
	Reason   string     `json:"reason"`
}

func toTaskJSON(t providers.Task) taskJSON {
	out := taskJSON{ID: t.ID, Process: t.Process, Release: t.Release, State: string(t.State), Address: t.Address, ExitCode: t.ExitCode, Reason: t.Reason}
	if !t.Started.IsZero() {
		s := t.Started
		out.Started = &s
	}
	if !t.Stopped.IsZero() {
		s := t.Stopped
		out.Stopped = &s
	}
	return out
}

// logJSON is one log line.
type logJSON struct {
	Time    time.Time `json:"time"`
	Stream  string    `json:"stream"`
	Process string    `json:"process"`
	Release string    `json:"release"`
	Message string    `json:"message"`
}

// planJSON is the difference between two releases (names only, no values).
type planJSON struct {
	App       string          `json:"app"`
	From      string          `json:"from"`
	To        string          `json:"to"`
	Empty     bool            `json:"empty"`
	Summary   string          `json:"summary"`
	Image     *changeJSON     `json:"image"`
	Env       []envChangeJSON `json:"env"`
	Processes []procDiffJSON  `json:"processes"`
	// Resources is what the platform would do per resource (convox plan
	// on a scheduler that plans its own changes); empty otherwise.
	Resources []resourceChangeJSON `json:"resources"`
}

type resourceChangeJSON struct {
	Resource    string   `json:"resource"`
	Type        string   `json:"type"`
	Action      string   `json:"action"`
	Replacement string   `json:"replacement,omitempty"`
	Scopes      []string `json:"scopes,omitempty"`
}

type changeJSON struct {
	Field string `json:"field"`
	From  string `json:"from"`
	To    string `json:"to"`
}

type envChangeJSON struct {
	Name   string `json:"name"`
	Change string `json:"change"`
	Secret bool   `json:"secret"`
}

type procDiffJSON struct {
	Name   string       `json:"name"`
	Change string       `json:"change"`
	Fields []changeJSON `json:"fields"`
}

func toPlanJSON(p *convox.Plan) planJSON {
	out := planJSON{App: p.App, From: p.From, To: p.To, Empty: p.Empty(), Summary: p.String(), Env: []envChangeJSON{}, Processes: []procDiffJSON{}, Resources: []resourceChangeJSON{}}
	if p.Image != nil {
		out.Image = &changeJSON{Field: p.Image.Field, From: p.Image.From, To: p.Image.To}
	}
	for _, e := range p.Env {
		out.Env = append(out.Env, envChangeJSON{Name: e.Name, Change: string(e.Kind), Secret: e.Secret})
	}
	for _, pc := range p.Processes {
		d := procDiffJSON{Name: pc.Name, Change: string(pc.Kind), Fields: []changeJSON{}}
		for _, f := range pc.Fields {
			d.Fields = append(d.Fields, changeJSON{Field: f.Field, From: f.From, To: f.To})
		}
		out.Processes = append(out.Processes, d)
	}
	for _, r := range p.Resources {
		out.Resources = append(out.Resources, resourceChangeJSON{Resource: r.Resource, Type: r.Type, Action: string(r.Action), Replacement: string(r.Replacement), Scopes: r.Scopes})
	}
	return out
}

// deployJSON is the outcome of a command that deploys a release.
type deployJSON struct {
	App       string            `json:"app"`
	Release   string            `json:"release"`
	Parent    string            `json:"parent"`
	Status    string            `json:"status"`
	ImageRef  string            `json:"imageRef"`
	Digest    string            `json:"digest"`
	Endpoints map[string]string `json:"endpoints"`
}

// errorDoc is the --json document of a failed command.
type errorDoc struct {
	Error errorJSON `json:"error"`
}

type errorJSON struct {
	// Code is "usage" for a malformed command line, else errorCode's.
	Code    string `json:"code"`
	Message string `json:"message"`
	Hint    string `json:"hint,omitempty"`
	// The fields of a failed deploy.
	Release      string    `json:"release,omitempty"`
	Previous     string    `json:"previous,omitempty"`
	Step         string    `json:"step,omitempty"`
	Reason       string    `json:"reason,omitempty"`
	RolledBack   bool      `json:"rolledBack,omitempty"`
	LastLogLines []logJSON `json:"lastLogLines,omitempty"`
}

// errorCodes name the failure classes of the --json error document,
// derived from the sentinel errors of package providers and the context
// errors, first match wins.
var errorCodes = []struct {
	err  error
	code string
}{
	{context.Canceled, "canceled"},
	{context.DeadlineExceeded, "timeout"},
	{providers.ErrNotFound, "not_found"},
	{providers.ErrAlreadyExists, "already_exists"},
	{providers.ErrConflict, "conflict"},
	{providers.ErrInvalid, "invalid"},
	{providers.ErrPermission, "permission"},
	{providers.ErrThrottled, "throttled"},
	{providers.ErrUnavailable, "unavailable"},
	{providers.ErrUnimplemented, "unimplemented"},
	{providers.ErrUnhealthy, "unhealthy"},
}

// errorCode names err's class for scripts: the first sentinel it matches,
// else "unknown".
func errorCode(err error) string {
	for _, c := range errorCodes {
		if errors.Is(err, c.err) {
			return c.code
		}
	}
	return "unknown"
}

func toErrorDoc(err error, usage bool) errorDoc {
	e := errorJSON{Code: errorCode(err), Message: err.Error()}
	if usage {
		e.Code = "usage"
	}
	var he *hintError
	if errors.As(err, &he) {
		e.Hint = he.hint
	}
	var de *convox.DeployError
	if errors.As(err, &de) {
		e.Release, e.Previous, e.Step, e.Reason, e.RolledBack = de.Release, de.Previous, string(de.Step), de.Reason, de.RolledBack
		for _, l := range de.LastLogLines {
			e.LastLogLines = append(e.LastLogLines, logJSON{Time: l.Time, Stream: l.Stream, Process: l.Process, Release: l.Release, Message: l.Message})
		}
	}
	return errorDoc{Error: e}
}

// table writes aligned columns.
type table struct{ tw *tabwriter.Writer }

func newTable(w io.Writer, header ...string) *table {
	t := &table{tw: tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)}
	t.row(header...)
	return t
}

func (t *table) row(cols ...string) { fmt.Fprintln(t.tw, strings.Join(cols, "\t")) }

func (t *table) flush() { t.tw.Flush() }

// shortDigest abbreviates "sha256:0123456789abcdef..." to 12 hex digits.
func shortDigest(d string) string {
	if _, hex, ok := strings.Cut(d, ":"); ok && len(hex) > 12 {
		return hex[:12]
	}
	return d
}

// ago renders how long ago t was, coarsely.
func ago(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	d := time.Since(t).Round(time.Second)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	}
	return t.Format("2006-01-02")
}

// sortedKeys returns m's keys in order.
func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }

// orDash renders an empty string as "-".
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// writeJSONLine writes v as one line of JSON.
func writeJSONLine(w io.Writer, v any) error {
	return json.NewEncoder(w).Encode(v)
}

// activity shows that a slow step goes on: its label at once, then on a
// terminal the elapsed time redrawn in place every second, elsewhere a
// "still <verb>" line every 10 seconds. The function it returns ends the
// step with a result.
func activity(w io.Writer, tty bool, label, verb string) (done func(result string)) {
	start := time.Now()
	stop, stopped := make(chan struct{}), make(chan struct{})
	var mu sync.Mutex
	fmt.Fprintf(w, "%s...", label)
	if !tty {
		fmt.Fprintln(w)
	}
	go func() {
		defer close(stopped)
		every := 10 * time.Second
		if tty {
			every = time.Second
		}
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			mu.Lock()
			elapsed := time.Since(start).Round(time.Second)
			if tty {
				fmt.Fprintf(w, "\r\x1b[K%s... %s", label, elapsed)
			} else {
				fmt.Fprintf(w, "  still %s: %s\n", verb, elapsed)
			}
			mu.Unlock()
		}
	}()
	return func(result string) {
		close(stop)
		<-stopped
		if tty {
			fmt.Fprintf(w, "\r\x1b[K%s... ", label)
		}
		fmt.Fprintf(w, "%s (%s)\n", result, time.Since(start).Round(100*time.Millisecond))
	}
}

// imageSize returns the compressed size of an image's layers, or -1.
func imageSize(img v1.Image) int64 {
	layers, err := img.Layers()
	if err != nil {
		return -1
	}
	var n int64
	for _, l := range layers {
		sz, err := l.Size()
		if err != nil {
			return -1
		}
		n += sz
	}
	return n
}

// megabytes renders a byte count as "4.2 MB".
func megabytes(n int64) string {
	return fmt.Sprintf("%.1f MB", float64(n)/1e6)
}
