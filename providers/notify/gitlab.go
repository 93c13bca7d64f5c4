package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/convox-go/convox/internal/poll"
	"github.com/convox-go/convox/providers"
)

// DefaultGitLabBaseURL is the GitLab REST API used when GitLab.BaseURL is empty.
const DefaultGitLabBaseURL = "https://gitlab.com/api/v4"

// MaxGitLabDescription is the longest description this notifier sends on a
// commit status (GitLab stores at most 255 characters); longer ones are
// cut, ending with "…".
const MaxGitLabDescription = 255

// MaxGitLabPages bounds the pages (of 100 deployments) read when looking
// for the running deployment of a release.
const MaxGitLabPages = 5

// GitLabCommit is the commit a release was built from, as GitLab's
// Deployments API wants it.
type GitLabCommit struct {
	// SHA is the full commit SHA. Required.
	SHA string
	// Ref is the branch or tag name. Required.
	Ref string
	// Tag says Ref is a tag.
	Tag bool
}

// GitLab records deploys as deployments of a GitLab project's environment
// (the Deployments API) and, unless NoCommitStatus is set, as a commit
// status on the release's commit.
//
// Each notification maps to one deployment status:
//
//	deploy-started                          running   (a new deployment)
//	deploy-succeeded                        success
//	deploy-failed                           failed
//	deploy-failed with Reason "canceled"    canceled  (what Deployment.Cancel reports)
//	rollback                                success   (a new deployment of the release rolled back to)
//
// Commit returns the release's commit; false (or a nil Commit) means the
// notification is not for this project and Notify does nothing. Other
// kinds of notification (a log alert, say) are not deployments: Notify
// does nothing for them either.
//
// deploy-started and rollback create a deployment:
// POST /projects/:id/deployments with environment, sha, ref, tag and
// status. deploy-succeeded and deploy-failed update the newest running
// deployment of the environment with the release's SHA:
// GET /projects/:id/deployments?environment=…&status=running&order_by=id&sort=desc
// (following X-Next-Page for at most MaxGitLabPages pages of 100), then
// PUT /projects/:id/deployments/:deployment_id with the status. Only one
// deploy of an app runs at a time, so the newest running deployment of
// that SHA is the one deploy-started created, even from another process.
// When none is found, a deployment is created with the final status.
//
// The commit status is POST /projects/:id/statuses/:sha with state,
// ref, name ("convox/<environment>" unless StatusName is set), a
// description and target_url when LogURL gives one. GitLab refuses to set
// a status the commit already has ("Cannot transition status"); that 400
// is taken as success.
//
// Requests that are safe to repeat (reads, deployment updates, commit
// statuses) are retried on network errors, 429 and 5xx, up to MaxAttempts
// in all, with the Webhook's backoff (exponential with jitter, or exactly
// Retry-After up to MaxBackoff) and never past ctx's deadline. Creating a
// deployment is retried only after a 429, which GitLab sends before doing
// anything: a 5xx or a lost response may have created it. Errors wrap the
// last *HTTPError and its sentinel (see HTTPError).
//
// The token is sent only in the PRIVATE-TOKEN header and never appears in
// String, any fmt verb or a returned error. A GitLab is safe for
// concurrent use.
type GitLab struct {
	// Project is the project's numeric ID ("42") or its full path
	// ("acme/web"). Required.
	Project string
	// Token is a personal, project or group access token with the api
	// scope and at least the Developer role. Required.
	Token string
	// BaseURL is the REST API root; empty means DefaultGitLabBaseURL. Set
	// it for a self-managed instance ("https://gitlab.example.com/api/v4").
	BaseURL string
	// Client sends the requests; nil means a client like
	// http.DefaultClient. Its CheckRedirect is ignored.
	Client *http.Client
	// Environment is the GitLab environment; empty means the app's name.
	Environment string
	// Commit returns the commit n's release was built from; false skips n.
	// Required.
	Commit func(n providers.Notification) (GitLabCommit, bool)
	// LogURL, when set, gives the commit status's target_url; "" leaves
	// it out.
	LogURL func(n providers.Notification) string
	// StatusName is the commit status's name; empty means
	// "convox/<environment>".
	StatusName string
	// NoCommitStatus turns commit statuses off.
	NoCommitStatus bool
	// MaxAttempts bounds the attempts of one request; zero means
	// DefaultMaxAttempts, 1 disables retries.
	MaxAttempts int
	// MinBackoff is the first wait between attempts before jitter; zero
	// means DefaultMinBackoff.
	MinBackoff time.Duration
	// MaxBackoff caps the waits and the Retry-After that is honored; zero
	// means DefaultMaxBackoff.
	MaxBackoff time.Duration
}

var _ providers.Notifier = GitLab{}

// Notify implements providers.Notifier: it records n as the type
// describes, bounded by ctx.
func (g GitLab) Notify(ctx context.Context, n providers.Notification) error {
	base, err := g.base()
	if err != nil {
		return err
	}
	var status string
	switch n.Kind {
	case providers.NotifyDeployStarted:
		status = "running"
	case providers.NotifyDeploySucceeded, providers.NotifyRollback:
		status = "success"
	case providers.NotifyDeployFailed:
		status = "failed"
		if n.Reason == "canceled" {
			status = "canceled"
		}
	default:
		return nil
	}
	commit, ok := g.Commit(n)
	if !ok {
		return nil
	}
	what := fmt.Sprintf("gitlab: %s of %s", n.Kind, target(n))
	if commit.SHA == "" || commit.Ref == "" {
		return fmt.Errorf("%s: %w: Commit returned an empty SHA or Ref", what, providers.ErrInvalid)
	}
	if strings.ContainsAny(commit.SHA, "/?#% ") {
		return fmt.Errorf("%s: %w: commit SHA %q is not a plain name", what, providers.ErrInvalid, commit.SHA)
	}
	env := g.Environment
	if env == "" {
		env = n.App
	}

	id, found := int64(0), false
	if n.Kind == providers.NotifyDeploySucceeded || n.Kind == providers.NotifyDeployFailed {
		if id, found, err = g.findRunning(ctx, base, env, commit.SHA); err != nil {
			return fmt.Errorf("%s: find the running deployment of %s: %w", what, shortSHA(commit.SHA), err)
		}
	}
	if found {
		body, _ := json.Marshal(map[string]string{"status": status})
		if _, err := g.do(ctx, true, http.MethodPut, g.endpoint(base, "deployments", strconv.FormatInt(id, 10)), body); err != nil {
			return fmt.Errorf("%s: set deployment %d to %s: %w", what, id, status, err)
		}
	} else {
		body, _ := json.Marshal(gitlabCreateDeployment{Environment: env, SHA: commit.SHA, Ref: commit.Ref, Tag: commit.Tag, Status: status})
		data, err := g.do(ctx, false, http.MethodPost, g.endpoint(base, "deployments"), body)
		if err != nil {
			return fmt.Errorf("%s: create a %s deployment of %s: %w", what, status, shortSHA(commit.SHA), err)
		}
		var d gitlabDeployment
		if json.Unmarshal(data, &d) != nil || d.ID <= 0 {
			return fmt.Errorf("%s: create a %s deployment: %w: the response has no deployment id", what, status, providers.ErrUnavailable)
		}
	}
	if g.NoCommitStatus {
		return nil
	}
	name := g.StatusName
	if name == "" {
		name = "convox/" + env
	}
	st := gitlabCommitStatus{State: status, Ref: commit.Ref, Name: name, Description: truncate(gitlabDescription(n), MaxGitLabDescription)}
	if g.LogURL != nil {
		st.TargetURL = g.LogURL(n)
	}
	body, _ := json.Marshal(st)
	if _, err := g.do(ctx, true, http.MethodPost, g.endpoint(base, "statuses", commit.SHA), body); err != nil {
		var herr *HTTPError
		if errors.As(err, &herr) && herr.StatusCode == http.StatusBadRequest && strings.Contains(herr.Message, "Cannot transition status") {
			return nil
		}
		return fmt.Errorf("%s: set commit status %s on %s: %w", what, status, shortSHA(commit.SHA), err)
	}
	return nil
}

// gitlabDescription is the commit status's description of n.
func gitlabDescription(n providers.Notification) string {
	switch n.Kind {
	case providers.NotifyDeployStarted:
		return join("Deploying "+n.Release, n.Summary)
	case providers.NotifyDeploySucceeded:
		return join("Deployed "+n.Release, n.Summary)
	case providers.NotifyRollback:
		s := "Rolled back to " + n.Release
		if n.Previous != "" {
			s += " from " + n.Previous
		}
		return s
	default:
		head := n.Release + " failed"
		if n.RolledBack {
			head += ", rolled back"
			if n.Previous != "" {
				head += " to " + n.Previous
			}
		}
		return join(head, n.Reason)
	}
}

// shortSHA returns the first 12 characters of a commit SHA, for errors.
func shortSHA(sha string) string {
	if len(sha) > 12 {
		return sha[:12]
	}
	return sha
}

type gitlabCreateDeployment struct {
	Environment string `json:"environment"`
	SHA         string `json:"sha"`
	Ref         string `json:"ref"`
	Tag         bool   `json:"tag"`
	Status      string `json:"status"`
}

type gitlabDeployment struct {
	ID     int64  `json:"id"`
	SHA    string `json:"sha"`
	Status string `json:"status"`
}

type gitlabCommitStatus struct {
	State       string `json:"state"`
	Ref         string `json:"ref"`
	Name        string `json:"name"`
	Description string `json:"description"`
	TargetURL   string `json:"target_url,omitempty"`
}

// findRunning returns the newest running deployment of env at sha.
func (g GitLab) findRunning(ctx context.Context, base *url.URL, env, sha string) (int64, bool, error) {
	page := "1"
	for range MaxGitLabPages {
		u := g.endpoint(base, "deployments")
		u.RawQuery = url.Values{"environment": {env}, "status": {"running"}, "order_by": {"id"}, "sort": {"desc"}, "per_page": {"100"}, "page": {page}}.Encode()
		data, next, err := g.get(ctx, u)
		if err != nil {
			return 0, false, err
		}
		var list []gitlabDeployment
		if err := json.Unmarshal(data, &list); err != nil {
			return 0, false, fmt.Errorf("%w: decode deployments: %w", providers.ErrUnavailable, err)
		}
		var best int64
		for _, d := range list {
			if d.SHA == sha && d.Status == "running" {
				best = max(best, d.ID)
			}
		}
		if best > 0 {
			return best, true, nil
		}
		if _, err := strconv.Atoi(next); err != nil {
			return 0, false, nil
		}
		page = next
	}
	return 0, false, nil
}

// base validates the configuration and returns the API root.
func (g GitLab) base() (*url.URL, error) {
	if g.Project == "" || strings.ContainsAny(g.Project, "?#%") || strings.HasPrefix(g.Project, "/") || strings.HasSuffix(g.Project, "/") {
		return nil, fmt.Errorf("gitlab: %w: Project must be a numeric ID or a path like group/project, got %q", providers.ErrInvalid, g.Project)
	}
	if g.Token == "" {
		return nil, fmt.Errorf("gitlab: %w: Token is required", providers.ErrInvalid)
	}
	if g.Commit == nil {
		return nil, fmt.Errorf("gitlab: %w: Commit is required", providers.ErrInvalid)
	}
	raw := g.BaseURL
	if raw == "" {
		raw = DefaultGitLabBaseURL
	}
	u, err := parseEndpoint(raw)
	if err != nil {
		return nil, fmt.Errorf("gitlab: BaseURL: %w: %w", providers.ErrInvalid, err)
	}
	u.User, u.RawQuery, u.Fragment = nil, "", ""
	return u, nil
}

// endpoint returns base/projects/:id/<parts...>, with the project path
// URL-encoded as one segment ("acme%2Fweb") as GitLab requires.
func (g GitLab) endpoint(base *url.URL, parts ...string) *url.URL {
	u := *base
	path := strings.TrimSuffix(base.Path, "/") + "/projects/" + g.Project
	raw := strings.TrimSuffix(base.EscapedPath(), "/") + "/projects/" + url.PathEscape(g.Project)
	for _, p := range parts {
		path += "/" + p
		raw += "/" + url.PathEscape(p)
	}
	u.Path, u.RawPath = path, raw
	return &u
}

// get reads one page and returns its body and X-Next-Page header.
func (g GitLab) get(ctx context.Context, u *url.URL) ([]byte, string, error) {
	var next string
	x := g.exchange(http.MethodGet, u, nil)
	x.onHeader = func(h http.Header) { next = h.Get("X-Next-Page") }
	data, err := g.retry(ctx, true, x)
	return data, next, err
}

// do sends one request; idempotent requests are retried on any
// temporary failure, others only after a 429.
func (g GitLab) do(ctx context.Context, idempotent bool, method string, u *url.URL, body []byte) ([]byte, error) {
	return g.retry(ctx, idempotent, g.exchange(method, u, body))
}

func (g GitLab) retry(ctx context.Context, idempotent bool, x exchange) ([]byte, error) {
	attempts := g.MaxAttempts
	if attempts <= 0 {
		attempts = DefaultMaxAttempts
	}
	minB, maxB := Webhook{MinBackoff: g.MinBackoff, MaxBackoff: g.MaxBackoff}.backoffs()
	for attempt := 1; ; attempt++ {
		data, err := x.do(ctx)
		if err == nil {
			return data, nil
		}
		at := fmt.Errorf("%s %s (attempt %d of %d): %w", x.method, x.printable, attempt, attempts, err)
		var herr *HTTPError
		again := retryable(err)
		if !idempotent {
			again = errors.As(err, &herr) && herr.StatusCode == http.StatusTooManyRequests
		}
		if ctx.Err() != nil || !again || attempt >= attempts {
			return nil, at
		}
		wait := retryAfter(err)
		switch {
		case wait > maxB:
			return nil, fmt.Errorf("%w (not retried: Retry-After exceeds %s)", at, maxB)
		case wait == 0:
			wait = backoff(attempt, minB, maxB, rand.Int64N)
		}
		if deadline, ok := ctx.Deadline(); ok && time.Now().Add(wait).After(deadline) {
			return nil, fmt.Errorf("%w (not retried: the next attempt, in %s, would be after the deadline)", at, wait)
		}
		if err2 := poll.Sleep(ctx, wait); err2 != nil {
			return nil, fmt.Errorf("%w (waiting to retry after: %v)", err2, at)
		}
	}
}

func (g GitLab) exchange(method string, u *url.URL, body []byte) exchange {
	h := http.Header{"Private-Token": {g.Token}, "Accept": {"application/json"}}
	if body != nil {
		h.Set("Content-Type", "application/json")
	}
	return exchange{client: noRedirects(g.Client), method: method, url: u, printable: safeURL(u.String()), header: h, body: body, secrets: []string{g.Token}}
}

// String describes the notifier with the token redacted.
func (g GitLab) String() string {
	token := ""
	if g.Token != "" {
		token = redacted
	}
	base := g.BaseURL
	if base == "" {
		base = DefaultGitLabBaseURL
	}
	return fmt.Sprintf("notify.GitLab{Project:%s BaseURL:%s Environment:%s Token:%s}", g.Project, safeURL(base), g.Environment, token)
}

// Format implements fmt.Formatter so that every verb prints String.
func (g GitLab) Format(f fmt.State, verb rune) { fmt.Fprint(f, g.String()) }
