package logforward

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/convox-go/convox/providers"
)

// Defaults of AlertOptions.
const (
	DefaultAlertWindow = 15 * time.Minute
	DefaultAlertKeys   = 10000
	DefaultAlertPrefix = "logforward/alerts/"
)

// MaxAlertLine bounds the matching line an alert quotes, in characters.
const MaxAlertLine = 1000

// Rule is what an alert looks for.
type Rule struct {
	// Name names the alert ("panic", "crash-loop"); required, it appears in
	// the notification and the rate limit's key.
	Name string
	// Pattern selects the lines (see Compile); required.
	Pattern string
	// Process limits the rule to one process; "" means every process.
	Process string
}

// AlertOptions tune Alerts. Zero fields take defaults.
type AlertOptions struct {
	// Window is the rate limit: after an alert for a rule and an app's
	// process, matching lines whose time is less than Window later raise
	// none (DefaultAlertWindow). A crash loop whose tasks keep restarting
	// is one alert per Window, not one per task or per line.
	Window time.Duration
	// Store, when set, holds the time of each rule's last alert
	// (compare-and-swap on keys under KeyPrefix), so that every instance
	// of the handler shares the rate limit; without it each instance
	// keeps its own, in memory (a Lambda function's concurrent instances
	// may then alert once each).
	Store providers.Store
	// KeyPrefix prefixes the Store's keys (DefaultAlertPrefix).
	KeyPrefix string
	// MaxKeys bounds the rule/app/process keys kept in memory
	// (DefaultAlertKeys); when it is reached they are forgotten.
	MaxKeys int
}

// Alerts is a Sink that notifies through a providers.Notifier when lines
// match a rule, at most once per AlertOptions.Window for each rule, app
// and process. Each alert is a notification of kind
// providers.NotifyLogAlert with the app, the release of the first
// matching line, a Summary naming the rule, the process, the number of
// matching lines in the batch and the first line's task, the first line
// itself (at most MaxAlertLine characters) as Reason, and its time.
// Notifiers that record deploys only (GitLab) skip such notifications;
// chat and webhook notifiers deliver them. Alerts is safe for concurrent
// use.
type Alerts struct {
	notifier providers.Notifier
	rules    []rule
	opts     AlertOptions

	mu   sync.Mutex
	last map[string]time.Time
}

type rule struct {
	Rule
	p Pattern
}

// NewAlerts returns an Alerts sink, or an error matching
// providers.ErrInvalid for a nil notifier, no rules, or a rule without a
// name or with a pattern that does not compile or is empty.
func NewAlerts(n providers.Notifier, rules []Rule, opts *AlertOptions) (*Alerts, error) {
	if n == nil {
		return nil, providers.Invalidf("logforward: alerts need a notifier")
	}
	if len(rules) == 0 {
		return nil, providers.Invalidf("logforward: alerts need at least one rule")
	}
	a := &Alerts{notifier: n, last: map[string]time.Time{}}
	if opts != nil {
		a.opts = *opts
	}
	if a.opts.Window <= 0 {
		a.opts.Window = DefaultAlertWindow
	}
	if a.opts.KeyPrefix == "" {
		a.opts.KeyPrefix = DefaultAlertPrefix
	}
	if a.opts.MaxKeys <= 0 {
		a.opts.MaxKeys = DefaultAlertKeys
	}
	for i, r := range rules {
		if r.Name == "" || r.Pattern == "" {
			return nil, providers.Invalidf("logforward: alert rule %d needs a name and a pattern", i)
		}
		p, err := Compile(r.Pattern)
		if err != nil {
			return nil, fmt.Errorf("alert rule %q: %w", r.Name, err)
		}
		a.rules = append(a.rules, rule{Rule: r, p: p})
	}
	return a, nil
}

// match is the lines of one rule, app and process in a batch.
type match struct {
	key   string
	rule  string
	first providers.LogEntry
	count int
}

// Send implements Sink: it raises the alerts the entries call for. An
// alert whose notification fails is not counted against the rate limit,
// and the error is returned so that the entries come again.
func (a *Alerts) Send(ctx context.Context, entries []providers.LogEntry) error {
	var order []*match
	byKey := map[string]*match{}
	for _, e := range entries {
		for _, r := range a.rules {
			if (r.Process != "" && r.Process != e.Process) || !r.p.Match(e.Message) {
				continue
			}
			key := url.PathEscape(e.App) + "/" + url.PathEscape(e.Process) + "/" + url.PathEscape(r.Name)
			m := byKey[key]
			if m == nil {
				m = &match{key: key, rule: r.Name, first: e}
				byKey[key] = m
				order = append(order, m)
			}
			m.count++
		}
	}
	var errs []error
	for _, m := range order {
		release, ok, err := a.claim(ctx, m.key, m.first.Time)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !ok {
			continue
		}
		if err := a.notifier.Notify(ctx, a.notification(m)); err != nil {
			release()
			errs = append(errs, fmt.Errorf("logforward: alert %s of %s: %w", m.rule, m.first.App, err))
		}
	}
	return errors.Join(errs...)
}

func (a *Alerts) notification(m *match) providers.Notification {
	e := m.first
	process := e.Process
	if process == "" {
		process = "(no process)"
	}
	lines := "1 matching line"
	if m.count > 1 {
		lines = fmt.Sprintf("%d matching lines", m.count)
	}
	summary := fmt.Sprintf("%s: %s in %s (first from %s)", m.rule, lines, process, e.Stream)
	line := e.Message
	if utf8.RuneCountInString(line) > MaxAlertLine {
		line = string([]rune(line)[:MaxAlertLine-1]) + "…"
	}
	return providers.Notification{Kind: providers.NotifyLogAlert, App: e.App, Release: e.Release, Summary: summary, Reason: line, Time: e.Time}
}

// alertDoc is the Store document of a key's last alert.
type alertDoc struct {
	Time time.Time `json:"time"`
}

// claim reports whether an alert for key at time t is due, and records
// it. release undoes the record when the alert could not be sent.
func (a *Alerts) claim(ctx context.Context, key string, t time.Time) (release func(), ok bool, err error) {
	a.mu.Lock()
	last, seen := a.last[key]
	if seen && t.Sub(last) < a.opts.Window {
		a.mu.Unlock()
		return nil, false, nil
	}
	if len(a.last) >= a.opts.MaxKeys {
		clear(a.last)
	}
	a.last[key] = t
	a.mu.Unlock()
	forget := func() {
		a.mu.Lock()
		if seen {
			a.last[key] = last
		} else {
			delete(a.last, key)
		}
		a.mu.Unlock()
	}
	if a.opts.Store == nil {
		return forget, true, nil
	}
	skey := a.opts.KeyPrefix + key
	if len(skey) > providers.MaxKeyLen {
		skey = skey[:providers.MaxKeyLen]
	}
	value, _ := json.Marshal(alertDoc{Time: t})
	doc, err := a.opts.Store.Get(ctx, skey)
	version := int64(0)
	switch {
	case errors.Is(err, providers.ErrNotFound):
	case err != nil:
		forget()
		return nil, false, fmt.Errorf("logforward: read the last alert %s: %w", skey, err)
	default:
		var prev alertDoc
		if json.Unmarshal(doc.Value, &prev) == nil && t.Sub(prev.Time) < a.opts.Window {
			a.mu.Lock()
			a.last[key] = prev.Time
			a.mu.Unlock()
			return nil, false, nil
		}
		version = doc.Version
	}
	v, err := a.opts.Store.Put(ctx, skey, value, version)
	switch {
	case errors.Is(err, providers.ErrConflict):
		// Another instance alerted first.
		return nil, false, nil
	case err != nil:
		forget()
		return nil, false, fmt.Errorf("logforward: record the alert %s: %w", skey, err)
	}
	return func() {
		forget()
		a.opts.Store.Delete(context.WithoutCancel(ctx), skey, v)
	}, true, nil
}
