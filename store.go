package convox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"strconv"
	"strings"
	"time"

	"github.com/convox-go/convox/providers"
)

// Store layout. Every document is JSON:
//
//	app/<app>                  appDoc: spec, active and last healthy release, routes, deploy lease
//	release/<app>/<seq:%016d>  releaseDoc: immutable content plus status marks
//
// The app document is the single source of truth for which release is
// active, so at every instant exactly one release is active.
const appPrefix = "app/"

func appKey(app string) string        { return appPrefix + app }
func releasePrefix(app string) string { return "release/" + app + "/" }
func releaseKey(app string, seq int64) string {
	return fmt.Sprintf("%s%016d", releasePrefix(app), seq)
}

// releaseID formats a release sequence number as its ID ("R12").
func releaseID(seq int64) string { return "R" + strconv.FormatInt(seq, 10) }

// parseReleaseID accepts "R12" or "12".
func parseReleaseID(id string) (int64, error) {
	n, err := strconv.ParseInt(strings.TrimPrefix(id, "R"), 10, 64)
	if err != nil || n <= 0 {
		return 0, providers.Invalidf("release ID %q is not of the form R<number>", id)
	}
	return n, nil
}

type routeDoc struct {
	Balancer string `json:"balancer"`
	ID       string `json:"id"`
	Endpoint string `json:"endpoint"`
	// Binding is the route's default target set ("").
	Binding providers.Binding `json:"binding"`
	// Live names the target set serving traffic ("" or altSet) and
	// LiveBinding is its binding when it is not the default set.
	Live        string             `json:"live,omitempty"`
	LiveBinding *providers.Binding `json:"liveBinding,omitempty"`
}

// altSet is the second target set weighted deploys alternate with the default one.
const altSet = "g"

// live returns the binding of the target set serving traffic.
func (r routeDoc) live() providers.Binding {
	if r.Live != "" && r.LiveBinding != nil {
		return *r.LiveBinding
	}
	return r.Binding
}

// other names the target set a weighted deploy stages into.
func (r routeDoc) other() string {
	if r.Live == "" {
		return altSet
	}
	return ""
}

// maxHistory bounds appDoc.History.
const maxHistory = 50

type appDoc struct {
	Name        string    `json:"name"`
	Spec        AppSpec   `json:"spec"`
	Created     time.Time `json:"created"`
	Latest      int64     `json:"latest"`
	Active      string    `json:"active,omitempty"`
	LastHealthy string    `json:"lastHealthy,omitempty"`
	// History lists the releases that were active before Active, newest
	// first, at most maxHistory.
	History  []string            `json:"history,omitempty"`
	Routes   map[string]routeDoc `json:"routes,omitempty"`
	Lease    *leaseDoc           `json:"lease,omitempty"`
	Deleting bool                `json:"deleting,omitempty"`
	// Migration is a balancer migration in progress: tasks join the
	// routes of both balancers until it finishes or is aborted.
	Migration *migrationDoc `json:"migration,omitempty"`
	// Retired routes are left from a finished or aborted balancer
	// migration and are deleted once no task is attached to them.
	Retired []routeDoc `json:"retired,omitempty"`

	version int64
}

func (d *appDoc) app() *App {
	a := &App{
		Name: d.Name, Providers: d.Spec, Created: d.Created,
		Active: d.Active, LastHealthy: d.LastHealthy,
	}
	if d.Latest > 0 {
		a.Latest = releaseID(d.Latest)
	}
	if d.Lease != nil && !d.Lease.expired(time.Now()) {
		a.Deploying = d.Lease.Release
	}
	if len(d.Routes) > 0 {
		a.Endpoints = endpoints(d.Routes)
	}
	if d.Migration != nil {
		a.MigratingTo, a.NextEndpoints = d.Migration.To, endpoints(d.Migration.Routes)
	}
	return a
}

type migrationDoc struct {
	To      string              `json:"to"`
	Routes  map[string]routeDoc `json:"routes,omitempty"`
	Started time.Time           `json:"started"`
}

// routesOf returns the routes of a process: on the app's balancer, and on
// the target balancer of a migration in progress.
func (d *appDoc) routesOf(process string) []routeDoc {
	var rs []routeDoc
	if r, ok := d.Routes[process]; ok {
		rs = append(rs, r)
	}
	if d.Migration != nil {
		if r, ok := d.Migration.Routes[process]; ok {
			rs = append(rs, r)
		}
	}
	return rs
}

type envDoc struct {
	Value  string `json:"v"`
	Secret bool   `json:"s,omitempty"`
	// Ref: Value is the reference a providers.SecretKeeper returned.
	Ref bool `json:"r,omitempty"`
}

type releaseDoc struct {
	App         string            `json:"app"`
	Seq         int64             `json:"seq"`
	Parent      string            `json:"parent,omitempty"`
	ImageRef    string            `json:"imageRef"`
	Image       providers.Image   `json:"image"`
	Registry    string            `json:"registry"`
	Env         map[string]envDoc `json:"env,omitempty"`
	Processes   []Process         `json:"processes"`
	Description string            `json:"description,omitempty"`
	Created     time.Time         `json:"created"`

	// Status marks, written after creation.
	Promoted time.Time `json:"promoted,omitzero"`
	Healthy  bool      `json:"healthy,omitempty"`
	// RolledBack: a rollback replaced the release while it was active.
	RolledBack bool   `json:"rolledBack,omitempty"`
	Failed     bool   `json:"failed,omitempty"`
	Canceled   bool   `json:"canceled,omitempty"`
	Reason     string `json:"reason,omitempty"`

	version int64
}

func (c *Client) loadApp(ctx context.Context, name string) (*appDoc, error) {
	if err := providers.ValidateName("app", name, providers.MaxAppName); err != nil {
		return nil, err
	}
	d, err := c.rack.store.Get(ctx, appKey(name))
	if errors.Is(err, providers.ErrNotFound) {
		return nil, fmt.Errorf("app %q: %w", name, providers.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	var doc appDoc
	if err := json.Unmarshal(d.Value, &doc); err != nil {
		return nil, fmt.Errorf("decode app %q: %w", name, err)
	}
	doc.version = d.Version
	return &doc, nil
}

// saveApp writes doc if nobody changed it since it was read (providers.ErrConflict otherwise).
func (c *Client) saveApp(ctx context.Context, doc *appDoc) error {
	b, err := json.Marshal(doc)
	if err != nil {
		return err
	}
	v, err := c.rack.store.Put(ctx, appKey(doc.Name), b, doc.version)
	if err != nil {
		return err
	}
	doc.version = v
	return nil
}

// updateApp applies fn to the current app document and saves it, reading
// again and retrying when a concurrent writer got there first. fn may
// return an error to abort without writing. (A conflict is not a
// temporary error the store's chain could retry: it needs a fresh read.)
func (c *Client) updateApp(ctx context.Context, name string, fn func(*appDoc) error) (*appDoc, error) {
	for attempt := 0; ; attempt++ {
		doc, err := c.loadApp(ctx, name)
		if err != nil {
			return nil, err
		}
		if err := fn(doc); err != nil {
			return nil, err
		}
		err = c.saveApp(ctx, doc)
		if err == nil {
			return doc, nil
		}
		if !errors.Is(err, providers.ErrConflict) || attempt >= 50 {
			return nil, err
		}
	}
}

func (c *Client) loadRelease(ctx context.Context, app, id string) (*releaseDoc, error) {
	seq, err := parseReleaseID(id)
	if err != nil {
		return nil, err
	}
	d, err := c.rack.store.Get(ctx, releaseKey(app, seq))
	if errors.Is(err, providers.ErrNotFound) {
		return nil, fmt.Errorf("release %s of app %q: %w", releaseID(seq), app, providers.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	return decodeRelease(d)
}

func decodeRelease(d providers.Doc) (*releaseDoc, error) {
	var r releaseDoc
	if err := json.Unmarshal(d.Value, &r); err != nil {
		return nil, fmt.Errorf("decode %s: %w", d.Key, err)
	}
	r.version = d.Version
	return &r, nil
}

// updateRelease applies fn to the release's status marks with CAS retries.
func (c *Client) updateRelease(ctx context.Context, app, id string, fn func(*releaseDoc)) error {
	for attempt := 0; ; attempt++ {
		r, err := c.loadRelease(ctx, app, id)
		if err != nil {
			return err
		}
		fn(r)
		b, err := json.Marshal(r)
		if err != nil {
			return err
		}
		_, err = c.rack.store.Put(ctx, releaseKey(app, r.Seq), b, r.version)
		if err == nil || !errors.Is(err, providers.ErrConflict) || attempt >= 50 {
			return err
		}
	}
}

// list yields every document under prefix, paging through the store.
func (c *Client) list(ctx context.Context, prefix string, reverse bool) iter.Seq2[providers.Doc, error] {
	return func(yield func(providers.Doc, error) bool) {
		token := ""
		for {
			var page providers.DocPage
			page, err := c.rack.store.List(ctx, prefix, providers.ListOptions{Reverse: reverse, Token: token})
			if err != nil {
				yield(providers.Doc{}, err)
				return
			}
			for _, d := range page.Docs {
				if !yield(d, nil) {
					return
				}
			}
			if page.Next == "" {
				return
			}
			token = page.Next
		}
	}
}
