package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/convox-go/convox/providers"
)

// DefaultGitHubBaseURL is the GitHub REST API used when GitHub.BaseURL is empty.
const DefaultGitHubBaseURL = "https://api.github.com"

// MaxGitHubDescription is the longest description GitHub accepts on a
// deployment status; longer ones are cut, ending with "…".
const MaxGitHubDescription = 140

// GitHub records deploys as GitHub deployments and their statuses through
// the REST API.
//
// Each notification resolves to one deployment of Owner/Repo, then gets a
// status on it:
//
//	deploy-started    in_progress  "Deploying R2: <summary>"
//	deploy-succeeded  success      "Deployed R2: <summary>"
//	deploy-failed     failure      "R2 failed, rolled back to R1: <reason>"
//	rollback          success      "Rolled back to R2 from R1"
//
// (a log alert is not a deployment: Notify does nothing for it), and a
// rollback also sets inactive on the deployment of n.Previous, when
// one is found (GitHub does not mark production deployments inactive by
// itself). Descriptions are cut to MaxGitHubDescription characters.
//
// The deployment is resolved in this order:
//
//  1. DeploymentID, when set and it returns true: that deployment (one
//     your CI created, for instance) is used as is.
//  2. Otherwise Ref must give the git ref (a commit SHA, branch or tag) the
//     release was built from; an empty ref, or a nil Ref, means the
//     notification is not for this repository and Notify does nothing.
//  3. For deploy-started and rollback, a new deployment is created:
//     POST /repos/{owner}/{repo}/deployments with the ref, task "deploy",
//     the environment, auto_merge false, required_contexts [] (the deploy
//     is already under way; commit checks are not a gate here) and the
//     payload {"app", "release", "previous_release"}.
//  4. For deploy-succeeded and deploy-failed, the newest of the last 100
//     deployments of the environment (task "deploy") whose payload has
//     the same app and release is used, so that no state is kept between
//     calls and the notification may come from another process than the
//     one that started the deploy. When none is found, one is created as
//     in 3.
//
// Statuses are POST /repos/{owner}/{repo}/deployments/{id}/statuses with
// the state, description, environment, and log_url and environment_url
// when LogURL and EnvironmentURL give them.
//
// Each request is made once; errors wrap an *HTTPError and its sentinel
// (see HTTPError). The token is sent only in the Authorization header and
// never appears in String, any fmt verb or a returned error. A GitHub is
// safe for concurrent use.
type GitHub struct {
	// Owner is the repository's owner ("acme"). Required.
	Owner string
	// Repo is the repository's name ("web"). Required.
	Repo string
	// Token authenticates the requests (a fine-grained token or GitHub App
	// installation token with "deployments: write"). Required.
	Token string
	// BaseURL is the REST API root; empty means DefaultGitHubBaseURL. Set
	// it for GitHub Enterprise Server ("https://ghe.example.com/api/v3").
	BaseURL string
	// Client sends the requests; nil means http.DefaultClient.
	Client *http.Client
	// Environment is the GitHub environment of the deployments; empty
	// means the app's name.
	Environment string
	// Ref returns the git ref the notification's release was built from;
	// "" skips the notification. See the type's description.
	Ref func(n providers.Notification) string
	// DeploymentID, when set, returns the deployment to update for n, and
	// false to resolve it with Ref instead.
	DeploymentID func(n providers.Notification) (int64, bool)
	// LogURL, when set, gives the status's log_url (where the deploy's
	// logs are); "" leaves it out.
	LogURL func(n providers.Notification) string
	// EnvironmentURL, when set, gives the status's environment_url (where
	// the app is served); "" leaves it out.
	EnvironmentURL func(n providers.Notification) string
}

var _ providers.Notifier = GitHub{}

// Notify implements providers.Notifier: it resolves n's deployment and
// posts its status, as the type describes, bounded by ctx.
func (g GitHub) Notify(ctx context.Context, n providers.Notification) error {
	base, err := g.base()
	if err != nil {
		return err
	}
	env := g.Environment
	if env == "" {
		env = n.App
	}
	what := fmt.Sprintf("github: %s of %s", n.Kind, target(n))
	var state, desc string
	switch n.Kind {
	case providers.NotifyDeployStarted:
		state, desc = "in_progress", join("Deploying "+n.Release, n.Summary)
	case providers.NotifyDeploySucceeded:
		state, desc = "success", join("Deployed "+n.Release, n.Summary)
	case providers.NotifyDeployFailed:
		head := n.Release + " failed"
		switch {
		case n.RolledBack && n.Previous != "":
			head += ", rolled back to " + n.Previous
		case n.RolledBack:
			head += ", rolled back"
		}
		state, desc = "failure", join(head, n.Reason)
	case providers.NotifyRollback:
		state, desc = "success", "Rolled back to "+n.Release
		if n.Previous != "" {
			desc += " from " + n.Previous
		}
	case providers.NotifyLogAlert:
		return nil // not a deployment
	default:
		return fmt.Errorf("%s: %w: unknown notification kind", what, providers.ErrInvalid)
	}

	id, ok := int64(0), false
	if g.DeploymentID != nil {
		id, ok = g.DeploymentID(n)
	}
	if !ok {
		ref := ""
		if g.Ref != nil {
			ref = g.Ref(n)
		}
		if ref == "" {
			return nil
		}
		if n.Kind == providers.NotifyDeploySucceeded || n.Kind == providers.NotifyDeployFailed {
			id, ok, err = g.find(ctx, base, env, n.App, n.Release)
			if err != nil {
				return fmt.Errorf("%s: find deployment: %w", what, err)
			}
		}
		if !ok {
			if id, err = g.create(ctx, base, env, ref, n); err != nil {
				return fmt.Errorf("%s: create deployment: %w", what, err)
			}
		}
	}
	st := deploymentStatus{State: state, Description: truncate(desc, MaxGitHubDescription), Environment: env}
	if g.LogURL != nil {
		st.LogURL = g.LogURL(n)
	}
	if g.EnvironmentURL != nil {
		st.EnvironmentURL = g.EnvironmentURL(n)
	}
	if err := g.status(ctx, base, id, st); err != nil {
		return fmt.Errorf("%s: set status %s on deployment %d: %w", what, state, id, err)
	}
	if n.Kind == providers.NotifyRollback && n.Previous != "" && n.Previous != n.Release {
		prev, ok, err := g.find(ctx, base, env, n.App, n.Previous)
		if err != nil {
			return fmt.Errorf("%s: find deployment of %s: %w", what, n.Previous, err)
		}
		if ok {
			st := deploymentStatus{State: "inactive", Description: truncate("Rolled back to "+n.Release, MaxGitHubDescription), Environment: env}
			if err := g.status(ctx, base, prev, st); err != nil {
				return fmt.Errorf("%s: set status inactive on deployment %d: %w", what, prev, err)
			}
		}
	}
	return nil
}

// join joins a headline and an optional detail with ": ".
func join(head, detail string) string {
	if detail == "" {
		return head
	}
	return head + ": " + detail
}

// base validates the configuration and returns the repository's API URL
// ".../repos/{owner}/{repo}".
func (g GitHub) base() (*url.URL, error) {
	if g.Owner == "" || g.Repo == "" {
		return nil, fmt.Errorf("github: %w: Owner and Repo are required", providers.ErrInvalid)
	}
	if strings.ContainsAny(g.Owner+g.Repo, "/?#%") {
		return nil, fmt.Errorf("github: %w: Owner %q or Repo %q is not a plain name", providers.ErrInvalid, g.Owner, g.Repo)
	}
	if g.Token == "" {
		return nil, fmt.Errorf("github: %w: Token is required", providers.ErrInvalid)
	}
	if g.Ref == nil && g.DeploymentID == nil {
		return nil, fmt.Errorf("github: %w: Ref or DeploymentID is required", providers.ErrInvalid)
	}
	raw := g.BaseURL
	if raw == "" {
		raw = DefaultGitHubBaseURL
	}
	u, err := parseEndpoint(raw)
	if err != nil {
		return nil, fmt.Errorf("github: BaseURL: %w: %w", providers.ErrInvalid, err)
	}
	u = u.JoinPath("repos", g.Owner, g.Repo)
	u.User, u.RawQuery, u.Fragment = nil, "", ""
	return u, nil
}

// deploymentPayload is the payload of the deployments this notifier creates.
type deploymentPayload struct {
	App             string `json:"app"`
	Release         string `json:"release"`
	PreviousRelease string `json:"previous_release"`
}

type createDeployment struct {
	Ref              string            `json:"ref"`
	Task             string            `json:"task"`
	AutoMerge        bool              `json:"auto_merge"`
	RequiredContexts []string          `json:"required_contexts"`
	Environment      string            `json:"environment"`
	Description      string            `json:"description"`
	Payload          deploymentPayload `json:"payload"`
}

type deploymentStatus struct {
	State          string `json:"state"`
	Description    string `json:"description"`
	Environment    string `json:"environment"`
	LogURL         string `json:"log_url,omitempty"`
	EnvironmentURL string `json:"environment_url,omitempty"`
}

type deployment struct {
	ID      int64           `json:"id"`
	Payload json.RawMessage `json:"payload"`
}

// create creates a deployment for n at ref and returns its ID.
func (g GitHub) create(ctx context.Context, base *url.URL, env, ref string, n providers.Notification) (int64, error) {
	body, err := json.Marshal(createDeployment{
		Ref:              ref,
		Task:             "deploy",
		RequiredContexts: []string{},
		Environment:      env,
		Description:      truncate(join(n.Release, n.Summary), MaxGitHubDescription),
		Payload:          deploymentPayload{App: n.App, Release: n.Release, PreviousRelease: n.Previous},
	})
	if err != nil {
		return 0, fmt.Errorf("%w: %w", providers.ErrInvalid, err)
	}
	data, err := g.exchange(http.MethodPost, base.JoinPath("deployments"), body).do(ctx)
	if err != nil {
		return 0, err
	}
	var d deployment
	if err := json.Unmarshal(data, &d); err != nil || d.ID <= 0 {
		return 0, fmt.Errorf("%w: the response has no deployment id", providers.ErrUnavailable)
	}
	return d.ID, nil
}

// find returns the newest deployment among the last 100 of env whose
// payload names app and release.
func (g GitHub) find(ctx context.Context, base *url.URL, env, app, release string) (int64, bool, error) {
	u := base.JoinPath("deployments")
	u.RawQuery = url.Values{"environment": {env}, "task": {"deploy"}, "per_page": {"100"}}.Encode()
	data, err := g.exchange(http.MethodGet, u, nil).do(ctx)
	if err != nil {
		return 0, false, err
	}
	var list []deployment
	if err := json.Unmarshal(data, &list); err != nil {
		return 0, false, fmt.Errorf("%w: decode deployments: %w", providers.ErrUnavailable, err)
	}
	var best int64
	for _, d := range list {
		var p deploymentPayload
		if json.Unmarshal(d.Payload, &p) != nil || p.App != app || p.Release != release {
			continue
		}
		best = max(best, d.ID)
	}
	return best, best > 0, nil
}

// status posts a deployment status.
func (g GitHub) status(ctx context.Context, base *url.URL, id int64, st deploymentStatus) error {
	body, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("%w: %w", providers.ErrInvalid, err)
	}
	_, err = g.exchange(http.MethodPost, base.JoinPath("deployments", strconv.FormatInt(id, 10), "statuses"), body).do(ctx)
	return err
}

func (g GitHub) exchange(method string, u *url.URL, body []byte) exchange {
	h := http.Header{
		"Accept":               {"application/vnd.github+json"},
		"Authorization":        {"Bearer " + g.Token},
		"X-Github-Api-Version": {"2022-11-28"},
	}
	if body != nil {
		h.Set("Content-Type", "application/json")
	}
	return exchange{client: g.Client, method: method, url: u, printable: u.String(), header: h, body: body, secrets: []string{g.Token}}
}

// String describes the notifier with the token redacted.
func (g GitHub) String() string {
	token := ""
	if g.Token != "" {
		token = redacted
	}
	base := g.BaseURL
	if base == "" {
		base = DefaultGitHubBaseURL
	}
	return fmt.Sprintf("notify.GitHub{Owner:%s Repo:%s BaseURL:%s Environment:%s Token:%s}", g.Owner, g.Repo, safeURL(base), g.Environment, token)
}

// Format implements fmt.Formatter so that every verb prints String.
func (g GitHub) Format(f fmt.State, verb rune) { fmt.Fprint(f, g.String()) }
