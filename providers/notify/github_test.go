package notify_test

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	gocmp "github.com/google/go-cmp/cmp"

	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/notify"
)

// ghRequest is a request the fake GitHub received.
type ghRequest struct {
	Method string
	// Path is the request URI: path and query.
	Path string
	// Body is the decoded JSON body, nil when empty.
	Body any
}

// js decodes JSON text, for wants.
func js(s string) any {
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		panic(err)
	}
	return v
}

type ghDeployment struct {
	ID          int64           `json:"id"`
	Ref         string          `json:"ref"`
	Task        string          `json:"task"`
	Environment string          `json:"environment"`
	Payload     json.RawMessage `json:"payload"`
}

// seed returns a deployment made by the notifier for app and release.
func seed(id int64, env, app, release string) ghDeployment {
	return ghDeployment{ID: id, Ref: "sha-" + release, Task: "deploy", Environment: env,
		Payload: json.RawMessage(`{"app":"` + app + `","release":"` + release + `","previous_release":""}`)}
}

// fakeGitHub serves the deployments API of repository acme/web under any
// path prefix. A prefix "/moved" answers every request with a 307 redirect
// to the same request without it.
type fakeGitHub struct {
	*httptest.Server
	// failCreate, when set, is the status of every deployment creation.
	failCreate int

	mu          sync.Mutex
	deployments []ghDeployment
	requests    []ghRequest
	headers     []http.Header
}

func newFakeGitHub(t *testing.T, seeds ...ghDeployment) *fakeGitHub {
	f := &fakeGitHub{deployments: seeds}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeGitHub) serve(w http.ResponseWriter, r *http.Request) {
	if rest, ok := strings.CutPrefix(r.URL.RequestURI(), "/moved"); ok {
		http.Redirect(w, r, rest, http.StatusTemporaryRedirect)
		return
	}
	data, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	defer f.mu.Unlock()
	req := ghRequest{Method: r.Method, Path: r.URL.RequestURI()}
	if len(data) > 0 {
		req.Body = js(string(data))
	}
	f.requests = append(f.requests, req)
	f.headers = append(f.headers, r.Header.Clone())

	path := r.URL.Path
	if i := strings.Index(path, "/repos/"); i >= 0 {
		path = path[i:]
	}
	reply := func(status int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(v)
	}
	switch {
	case r.Method == "POST" && path == "/repos/acme/web/deployments":
		if f.failCreate != 0 {
			reply(f.failCreate, map[string]string{"message": "Validation Failed"})
			return
		}
		var d ghDeployment
		json.Unmarshal(data, &d)
		for _, e := range f.deployments {
			d.ID = max(d.ID, e.ID)
		}
		d.ID++
		f.deployments = append(f.deployments, d)
		reply(http.StatusCreated, d)
	case r.Method == "GET" && path == "/repos/acme/web/deployments":
		q := r.URL.Query()
		list := []ghDeployment{}
		for _, d := range f.deployments {
			if d.Environment == q.Get("environment") && d.Task == q.Get("task") {
				list = append(list, d)
			}
		}
		slices.SortFunc(list, func(a, b ghDeployment) int { return cmp.Compare(b.ID, a.ID) })
		reply(http.StatusOK, list)
	case r.Method == "POST" && strings.HasPrefix(path, "/repos/acme/web/deployments/") && strings.HasSuffix(path, "/statuses"):
		id, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimPrefix(path, "/repos/acme/web/deployments/"), "/statuses"), 10, 64)
		if !slices.ContainsFunc(f.deployments, func(d ghDeployment) bool { return d.ID == id }) {
			reply(http.StatusNotFound, map[string]string{"message": "Not Found"})
			return
		}
		reply(http.StatusCreated, map[string]any{"id": 1, "state": js(string(data)).(map[string]any)["state"]})
	default:
		reply(http.StatusNotFound, map[string]string{"message": "Not Found"})
	}
}

func (f *fakeGitHub) got() ([]ghRequest, []http.Header) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.requests), slices.Clone(f.headers)
}

// refOf is the Ref of the test notifiers.
func refOf(n providers.Notification) string { return "sha-" + n.Release }

const listWeb = "/repos/acme/web/deployments?environment=web&per_page=100&task=deploy"

func TestGitHub(t *testing.T) {
	started := providers.Notification{Kind: providers.NotifyDeployStarted, App: "web", Release: "R2", Previous: "R1", Summary: "image web:v2", Time: t0}
	succeeded := providers.Notification{Kind: providers.NotifyDeploySucceeded, App: "web", Release: "R2", Previous: "R1", Summary: "R2 is active and healthy", Time: t0}
	tests := []struct {
		name   string
		seeds  []ghDeployment
		config func(*notify.GitHub)
		prefix string
		notes  []providers.Notification
		want   []ghRequest
	}{
		{
			name:  "deploy-started creates a deployment at the release's ref and sets in_progress",
			notes: []providers.Notification{started},
			want: []ghRequest{
				{"POST", "/repos/acme/web/deployments", js(`{"ref": "sha-R2", "task": "deploy", "auto_merge": false, "required_contexts": [],
					"environment": "web", "description": "R2: image web:v2", "payload": {"app": "web", "release": "R2", "previous_release": "R1"}}`)},
				{"POST", "/repos/acme/web/deployments/1/statuses", js(`{"state": "in_progress", "description": "Deploying R2: image web:v2", "environment": "web"}`)},
			},
		},
		{
			name:  "deploy-succeeded finds the deployment its start created and sets success",
			notes: []providers.Notification{started, succeeded},
			want: []ghRequest{
				{"POST", "/repos/acme/web/deployments", js(`{"ref": "sha-R2", "task": "deploy", "auto_merge": false, "required_contexts": [],
					"environment": "web", "description": "R2: image web:v2", "payload": {"app": "web", "release": "R2", "previous_release": "R1"}}`)},
				{"POST", "/repos/acme/web/deployments/1/statuses", js(`{"state": "in_progress", "description": "Deploying R2: image web:v2", "environment": "web"}`)},
				{"GET", listWeb, nil},
				{"POST", "/repos/acme/web/deployments/1/statuses", js(`{"state": "success", "description": "Deployed R2: R2 is active and healthy", "environment": "web"}`)},
			},
		},
		{
			name:  "deploy-failed sets failure, says where it rolled back to and why",
			seeds: []ghDeployment{seed(1, "web", "web", "R2")},
			notes: []providers.Notification{failed},
			want: []ghRequest{
				{"GET", listWeb, nil},
				{"POST", "/repos/acme/web/deployments/1/statuses", js(`{"state": "failure", "description": "R2 failed, rolled back to R1: exit status 2", "environment": "web"}`)},
			},
		},
		{
			name:  "a failure that was not rolled back gives only the reason",
			seeds: []ghDeployment{seed(1, "web", "web", "R2")},
			notes: []providers.Notification{{Kind: providers.NotifyDeployFailed, App: "web", Release: "R2", Previous: "R1", Reason: "compensation failed"}},
			want: []ghRequest{
				{"GET", listWeb, nil},
				{"POST", "/repos/acme/web/deployments/1/statuses", js(`{"state": "failure", "description": "R2 failed: compensation failed", "environment": "web"}`)},
			},
		},
		{
			name:  "the newest deployment of the same app and release is used",
			seeds: []ghDeployment{seed(1, "web", "web", "R2"), seed(2, "web", "web", "R2"), seed(3, "web", "api", "R2"), seed(4, "web", "web", "R3")},
			notes: []providers.Notification{succeeded},
			want: []ghRequest{
				{"GET", listWeb, nil},
				{"POST", "/repos/acme/web/deployments/2/statuses", js(`{"state": "success", "description": "Deployed R2: R2 is active and healthy", "environment": "web"}`)},
			},
		},
		{
			name:  "an outcome without a deployment creates one first",
			seeds: []ghDeployment{seed(1, "web", "api", "R2"), {ID: 2, Ref: "main", Task: "deploy", Environment: "web", Payload: json.RawMessage(`""`)}},
			notes: []providers.Notification{succeeded},
			want: []ghRequest{
				{"GET", listWeb, nil},
				{"POST", "/repos/acme/web/deployments", js(`{"ref": "sha-R2", "task": "deploy", "auto_merge": false, "required_contexts": [],
					"environment": "web", "description": "R2: R2 is active and healthy", "payload": {"app": "web", "release": "R2", "previous_release": "R1"}}`)},
				{"POST", "/repos/acme/web/deployments/3/statuses", js(`{"state": "success", "description": "Deployed R2: R2 is active and healthy", "environment": "web"}`)},
			},
		},
		{
			name:  "a rollback creates a deployment of the restored release and marks the previous one inactive",
			seeds: []ghDeployment{seed(1, "web", "web", "R1"), seed(2, "web", "web", "R2")},
			notes: []providers.Notification{{Kind: providers.NotifyRollback, App: "web", Release: "R1", Previous: "R2"}},
			want: []ghRequest{
				{"POST", "/repos/acme/web/deployments", js(`{"ref": "sha-R1", "task": "deploy", "auto_merge": false, "required_contexts": [],
					"environment": "web", "description": "R1", "payload": {"app": "web", "release": "R1", "previous_release": "R2"}}`)},
				{"POST", "/repos/acme/web/deployments/3/statuses", js(`{"state": "success", "description": "Rolled back to R1 from R2", "environment": "web"}`)},
				{"GET", listWeb, nil},
				{"POST", "/repos/acme/web/deployments/2/statuses", js(`{"state": "inactive", "description": "Rolled back to R1", "environment": "web"}`)},
			},
		},
		{
			name:  "a rollback whose previous release has no deployment only sets success",
			notes: []providers.Notification{{Kind: providers.NotifyRollback, App: "web", Release: "R1", Previous: "R2"}},
			want: []ghRequest{
				{"POST", "/repos/acme/web/deployments", js(`{"ref": "sha-R1", "task": "deploy", "auto_merge": false, "required_contexts": [],
					"environment": "web", "description": "R1", "payload": {"app": "web", "release": "R1", "previous_release": "R2"}}`)},
				{"POST", "/repos/acme/web/deployments/1/statuses", js(`{"state": "success", "description": "Rolled back to R1 from R2", "environment": "web"}`)},
				{"GET", listWeb, nil},
			},
		},
		{
			name:  "a deployment ID from DeploymentID is used as is",
			seeds: []ghDeployment{{ID: 42, Ref: "main", Task: "deploy", Environment: "web"}},
			config: func(g *notify.GitHub) {
				g.DeploymentID = func(providers.Notification) (int64, bool) { return 42, true }
			},
			notes: []providers.Notification{started, succeeded},
			want: []ghRequest{
				{"POST", "/repos/acme/web/deployments/42/statuses", js(`{"state": "in_progress", "description": "Deploying R2: image web:v2", "environment": "web"}`)},
				{"POST", "/repos/acme/web/deployments/42/statuses", js(`{"state": "success", "description": "Deployed R2: R2 is active and healthy", "environment": "web"}`)},
			},
		},
		{
			name:   "an empty ref skips the notification",
			config: func(g *notify.GitHub) { g.Ref = func(providers.Notification) string { return "" } },
			notes:  []providers.Notification{started, succeeded, failed},
		},
		{
			name: "DeploymentID returning false without Ref skips the notification",
			config: func(g *notify.GitHub) {
				g.Ref = nil
				g.DeploymentID = func(providers.Notification) (int64, bool) { return 0, false }
			},
			notes: []providers.Notification{started, succeeded},
		},
		{
			name:  "the description is cut to 140 characters",
			seeds: []ghDeployment{seed(1, "web", "web", "R2")},
			notes: []providers.Notification{{Kind: providers.NotifyDeployFailed, App: "web", Release: "R2", Reason: strings.Repeat("x", 200)}},
			want: []ghRequest{
				{"GET", listWeb, nil},
				{"POST", "/repos/acme/web/deployments/1/statuses", map[string]any{"state": "failure", "description": "R2 failed: " + strings.Repeat("x", 128) + "…", "environment": "web"}},
			},
		},
		{
			name: "the environment, log URL and environment URL are sent when configured",
			config: func(g *notify.GitHub) {
				g.Environment = "production"
				g.LogURL = func(n providers.Notification) string { return "https://logs.example.com/" + n.App + "/" + n.Release }
				g.EnvironmentURL = func(providers.Notification) string { return "https://web.example.com" }
			},
			notes: []providers.Notification{started},
			want: []ghRequest{
				{"POST", "/repos/acme/web/deployments", js(`{"ref": "sha-R2", "task": "deploy", "auto_merge": false, "required_contexts": [],
					"environment": "production", "description": "R2: image web:v2", "payload": {"app": "web", "release": "R2", "previous_release": "R1"}}`)},
				{"POST", "/repos/acme/web/deployments/1/statuses", js(`{"state": "in_progress", "description": "Deploying R2: image web:v2", "environment": "production",
					"log_url": "https://logs.example.com/web/R2", "environment_url": "https://web.example.com"}`)},
			},
		},
		{
			name:   "a GitHub Enterprise base URL with a path prefixes every request",
			prefix: "/api/v3/",
			notes:  []providers.Notification{started},
			want: []ghRequest{
				{"POST", "/api/v3/repos/acme/web/deployments", js(`{"ref": "sha-R2", "task": "deploy", "auto_merge": false, "required_contexts": [],
					"environment": "web", "description": "R2: image web:v2", "payload": {"app": "web", "release": "R2", "previous_release": "R1"}}`)},
				{"POST", "/api/v3/repos/acme/web/deployments/1/statuses", js(`{"state": "in_progress", "description": "Deploying R2: image web:v2", "environment": "web"}`)},
			},
		},
		{
			name:   "a temporary redirect is followed with the request",
			prefix: "/moved",
			seeds:  []ghDeployment{{ID: 42, Ref: "main", Task: "deploy", Environment: "web"}},
			config: func(g *notify.GitHub) {
				g.DeploymentID = func(providers.Notification) (int64, bool) { return 42, true }
			},
			notes: []providers.Notification{started},
			want: []ghRequest{
				{"POST", "/repos/acme/web/deployments/42/statuses", js(`{"state": "in_progress", "description": "Deploying R2: image web:v2", "environment": "web"}`)},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeGitHub(t, tt.seeds...)
			g := notify.GitHub{Owner: "acme", Repo: "web", Token: "tok", BaseURL: f.URL + tt.prefix, Ref: refOf}
			if tt.config != nil {
				tt.config(&g)
			}
			for _, n := range tt.notes {
				if err := g.Notify(context.Background(), n); err != nil {
					t.Fatalf("Notify(%s): %v", n.Kind, err)
				}
			}
			got, headers := f.got()
			if diff := gocmp.Diff(tt.want, got); diff != "" {
				t.Errorf("requests (-want +got):\n%s", diff)
			}
			for i, h := range headers {
				want := []string{"Bearer tok", "application/vnd.github+json", "2022-11-28", "convox-notify/1"}
				if diff := gocmp.Diff(want, []string{h.Get("Authorization"), h.Get("Accept"), h.Get("X-GitHub-Api-Version"), h.Get("User-Agent")}); diff != "" {
					t.Errorf("request %d: headers (-want +got):\n%s", i, diff)
				}
			}
		})
	}
}

func TestGitHubFailedCreation(t *testing.T) {
	f := newFakeGitHub(t)
	f.failCreate = http.StatusUnprocessableEntity
	g := notify.GitHub{Owner: "acme", Repo: "web", Token: "tok", BaseURL: f.URL, Ref: refOf}
	err := g.Notify(context.Background(), providers.Notification{Kind: providers.NotifyDeployStarted, App: "web", Release: "R2"})
	if diff := gocmp.Diff("invalid", category(err)); diff != "" {
		t.Errorf("category of %v (-want +got):\n%s", err, diff)
	}
	var herr *notify.HTTPError
	if !errors.As(err, &herr) || !strings.Contains(err.Error(), "create deployment") {
		t.Errorf("err = %v, want the failed step and an *HTTPError", err)
	}
	got, _ := f.got()
	if diff := gocmp.Diff([]string{"POST /repos/acme/web/deployments"}, methodsAndPaths(got)); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
}

func methodsAndPaths(rs []ghRequest) []string {
	var s []string
	for _, r := range rs {
		s = append(s, r.Method+" "+r.Path)
	}
	return s
}

func TestGitHubConfiguration(t *testing.T) {
	f := newFakeGitHub(t)
	valid := notify.GitHub{Owner: "acme", Repo: "web", Token: "tok", BaseURL: f.URL, Ref: refOf}
	tests := []struct {
		name   string
		config func(*notify.GitHub)
		n      providers.Notification
	}{
		{"an owner is required", func(g *notify.GitHub) { g.Owner = "" }, failed},
		{"a repository is required", func(g *notify.GitHub) { g.Repo = "" }, failed},
		{"an owner with a slash is invalid", func(g *notify.GitHub) { g.Owner = "acme/web" }, failed},
		{"a token is required", func(g *notify.GitHub) { g.Token = "" }, failed},
		{"Ref or DeploymentID is required", func(g *notify.GitHub) { g.Ref = nil }, failed},
		{"the base URL must be absolute", func(g *notify.GitHub) { g.BaseURL = "api.github.com" }, failed},
		{"an unknown kind is invalid", nil, providers.Notification{Kind: "deploy-paused", App: "web", Release: "R2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := valid
			if tt.config != nil {
				tt.config(&g)
			}
			err := g.Notify(context.Background(), tt.n)
			if diff := gocmp.Diff("invalid", category(err)); diff != "" {
				t.Errorf("category of %v (-want +got):\n%s", err, diff)
			}
		})
	}
	got, _ := f.got()
	if diff := gocmp.Diff([]ghRequest(nil), got); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
}
