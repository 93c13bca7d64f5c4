package notify_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"

	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/notify"
)

// glToken is the access token the fake GitLab accepts.
const glToken = "glpat-secret-token-123"

// glDeployment is a deployment as GitLab's Deployments API returns it.
type glDeployment struct {
	ID          int64  `json:"id"`
	IID         int64  `json:"iid"`
	Ref         string `json:"ref"`
	SHA         string `json:"sha"`
	Status      string `json:"status"`
	Environment struct {
		Name string `json:"name"`
	} `json:"environment"`
}

// glFault scripts the answer to the next requests matching a method and
// path suffix.
type glFault struct {
	method, suffix string
	status         int
	body           string
	times          int
}

// fakeGitLab serves the parts of GitLab's REST API v4 the notifier uses,
// as GitLab's API documentation describes them: project IDs as numbers or
// URL-encoded paths, the PRIVATE-TOKEN header, offset pagination with
// page/per_page (default 20, at most 100) and the X-Page, X-Per-Page,
// X-Next-Page, X-Total, X-Total-Pages and Link headers, the Deployments
// API (list, create, update) and commit statuses.
type fakeGitLab struct {
	*httptest.Server

	mu          sync.Mutex
	deployments []glDeployment
	statuses    map[string]string // sha + "\x00" + name -> state
	faults      []glFault
	requests    []string
}

func newFakeGitLab(t *testing.T, seeds ...glDeployment) *fakeGitLab {
	f := &fakeGitLab{deployments: seeds, statuses: map[string]string{}}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeGitLab) fail(fl glFault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults = append(f.faults, fl)
}

// log returns the requests received, each as "METHOD path?query body".
func (f *fakeGitLab) log() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.requests...)
}

func (f *fakeGitLab) serve(w http.ResponseWriter, r *http.Request) {
	data, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	defer f.mu.Unlock()
	entry := r.Method + " " + r.URL.RequestURI()
	if len(data) > 0 {
		entry += " " + string(data)
	}
	f.requests = append(f.requests, entry)
	reply := func(status int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(v)
	}
	if r.Header.Get("PRIVATE-TOKEN") != glToken || r.Header.Get("Authorization") != "" {
		reply(http.StatusUnauthorized, map[string]string{"message": "401 Unauthorized"})
		return
	}
	const project = "/api/v4/projects/acme%2Fweb/"
	rest, ok := strings.CutPrefix(r.URL.EscapedPath(), project)
	if !ok {
		reply(http.StatusNotFound, map[string]string{"message": "404 Project Not Found"})
		return
	}
	for i, fl := range f.faults {
		if fl.method == r.Method && strings.HasSuffix(r.URL.Path, fl.suffix) && fl.times > 0 {
			f.faults[i].times--
			w.WriteHeader(fl.status)
			io.WriteString(w, fl.body)
			return
		}
	}
	var body map[string]any
	if len(data) > 0 && json.Unmarshal(data, &body) != nil {
		reply(http.StatusBadRequest, map[string]string{"message": "400 Bad request - invalid JSON"})
		return
	}
	str := func(k string) string { s, _ := body[k].(string); return s }
	valid := map[string]bool{"running": true, "success": true, "failed": true, "canceled": true}
	switch {
	case r.Method == "GET" && rest == "deployments":
		q := r.URL.Query()
		var list []glDeployment
		for _, d := range f.deployments {
			if (q.Get("environment") == "" || d.Environment.Name == q.Get("environment")) && (q.Get("status") == "" || d.Status == q.Get("status")) {
				list = append(list, d)
			}
		}
		if q.Get("sort") == "desc" {
			for i, j := 0, len(list)-1; i < j; i, j = i+1, j-1 {
				list[i], list[j] = list[j], list[i]
			}
		}
		per, _ := strconv.Atoi(q.Get("per_page"))
		if per <= 0 {
			per = 20
		}
		per = min(per, 100)
		page, _ := strconv.Atoi(q.Get("page"))
		page = max(page, 1)
		pages := max((len(list)+per-1)/per, 1)
		lo, hi := min((page-1)*per, len(list)), min(page*per, len(list))
		h := w.Header()
		h.Set("X-Page", strconv.Itoa(page))
		h.Set("X-Per-Page", strconv.Itoa(per))
		h.Set("X-Total", strconv.Itoa(len(list)))
		h.Set("X-Total-Pages", strconv.Itoa(pages))
		h.Set("X-Next-Page", "")
		if page < pages {
			h.Set("X-Next-Page", strconv.Itoa(page+1))
			next := *r.URL
			nq := next.Query()
			nq.Set("page", strconv.Itoa(page+1))
			next.RawQuery = nq.Encode()
			h.Set("Link", `<http://`+r.Host+next.RequestURI()+`>; rel="next"`)
		}
		reply(http.StatusOK, append([]glDeployment{}, list[lo:hi]...))
	case r.Method == "POST" && rest == "deployments":
		for _, k := range []string{"environment", "sha", "ref"} {
			if str(k) == "" {
				reply(http.StatusBadRequest, map[string]string{"error": k + " is missing"})
				return
			}
		}
		if _, ok := body["tag"].(bool); !ok {
			reply(http.StatusBadRequest, map[string]string{"error": "tag is missing"})
			return
		}
		if !valid[str("status")] {
			reply(http.StatusBadRequest, map[string]string{"error": "status does not have a valid value"})
			return
		}
		d := glDeployment{ID: int64(len(f.deployments) + 1), IID: int64(len(f.deployments) + 1), Ref: str("ref"), SHA: str("sha"), Status: str("status")}
		d.Environment.Name = str("environment")
		f.deployments = append(f.deployments, d)
		reply(http.StatusCreated, d)
	case r.Method == "PUT" && strings.HasPrefix(rest, "deployments/"):
		id, _ := strconv.ParseInt(strings.TrimPrefix(rest, "deployments/"), 10, 64)
		if !valid[str("status")] {
			reply(http.StatusBadRequest, map[string]string{"error": "status does not have a valid value"})
			return
		}
		for i := range f.deployments {
			if f.deployments[i].ID == id {
				f.deployments[i].Status = str("status")
				reply(http.StatusOK, f.deployments[i])
				return
			}
		}
		reply(http.StatusNotFound, map[string]string{"message": "404 Not found"})
	case r.Method == "POST" && strings.HasPrefix(rest, "statuses/"):
		sha := strings.TrimPrefix(rest, "statuses/")
		state := str("state")
		if !valid[state] && state != "pending" && state != "skipped" {
			reply(http.StatusBadRequest, map[string]string{"error": "state does not have a valid value"})
			return
		}
		key := sha + "\x00" + str("name")
		if f.statuses[key] == state {
			reply(http.StatusBadRequest, map[string]string{"message": "Cannot transition status via :run from :running (Reason(s): Status cannot transition via \"run\")"})
			return
		}
		f.statuses[key] = state
		reply(http.StatusCreated, map[string]any{"id": len(f.statuses), "sha": sha, "ref": str("ref"), "status": state, "name": str("name")})
	default:
		reply(http.StatusNotFound, map[string]string{"message": "404 Not Found"})
	}
}

const (
	shaR2 = "2a5e9c1d7f3b4e6a8c0d2f4b6e8a0c2d4f6b8e0a"
	shaR1 = "1b4d6f8a0c2e4a6c8e0b2d4f6a8c0e2b4d6f8a0c"
)

// commitOf maps releases R1 and R2 to their commits; other releases are
// not from this project.
func commitOf(n providers.Notification) (notify.GitLabCommit, bool) {
	switch n.Release {
	case "R1":
		return notify.GitLabCommit{SHA: shaR1, Ref: "v1", Tag: true}, true
	case "R2":
		return notify.GitLabCommit{SHA: shaR2, Ref: "main"}, true
	}
	return notify.GitLabCommit{}, false
}

func running(id int64, env, sha string) glDeployment {
	d := glDeployment{ID: id, IID: id, Ref: "main", SHA: sha, Status: "running"}
	d.Environment.Name = env
	return d
}

func (f *fakeGitLab) notifier() notify.GitLab {
	return notify.GitLab{Project: "acme/web", Token: glToken, BaseURL: f.URL + "/api/v4", Environment: "production",
		Commit: commitOf, MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond}
}

const (
	glDeps   = "/api/v4/projects/acme%2Fweb/deployments"
	glStatus = "/api/v4/projects/acme%2Fweb/statuses/" + shaR2
	glList   = "?environment=production&order_by=id&page=%d&per_page=100&sort=desc&status=running"
)

func TestGitLabRecordsDeploys(t *testing.T) {
	// 150 running deployments of other commits fill the first page, so
	// that R2's (id 1) is on the second.
	var crowd []glDeployment
	crowd = append(crowd, running(1, "production", shaR2))
	for i := int64(2); i <= 151; i++ {
		crowd = append(crowd, running(i, "production", shaR1))
	}
	tests := []struct {
		name  string
		seeds []glDeployment
		mod   func(*notify.GitLab)
		n     providers.Notification
		want  []string
		// final is the wanted status of every deployment of R2's commit.
		final []string
	}{
		{
			name: "a started deploy creates a running deployment and a running commit status",
			n:    providers.Notification{Kind: providers.NotifyDeployStarted, App: "web", Release: "R2", Previous: "R1", Summary: "image web:v2"},
			want: []string{
				"POST " + glDeps + ` {"environment":"production","sha":"` + shaR2 + `","ref":"main","tag":false,"status":"running"}`,
				"POST " + glStatus + ` {"state":"running","ref":"main","name":"convox/production","description":"Deploying R2: image web:v2"}`,
			},
			final: []string{"running"},
		},
		{
			name:  "a succeeded deploy updates the running deployment of its commit",
			seeds: []glDeployment{running(7, "production", shaR2)},
			n:     providers.Notification{Kind: providers.NotifyDeploySucceeded, App: "web", Release: "R2"},
			want: []string{
				"GET " + glDeps + fmt.Sprintf(glList, 1),
				"PUT " + glDeps + `/7 {"status":"success"}`,
				"POST " + glStatus + ` {"state":"success","ref":"main","name":"convox/production","description":"Deployed R2"}`,
			},
			final: []string{"success"},
		},
		{
			name:  "the running deployment is found on a later page through X-Next-Page",
			seeds: crowd,
			mod:   func(g *notify.GitLab) { g.NoCommitStatus = true },
			n:     providers.Notification{Kind: providers.NotifyDeployFailed, App: "web", Release: "R2", Reason: "exit 1"},
			want: []string{
				"GET " + glDeps + fmt.Sprintf(glList, 1),
				"GET " + glDeps + fmt.Sprintf(glList, 2),
				"PUT " + glDeps + `/1 {"status":"failed"}`,
			},
			final: []string{"failed"},
		},
		{
			name:  "a canceled deploy becomes a canceled deployment",
			seeds: []glDeployment{running(3, "production", shaR2)},
			n:     providers.Notification{Kind: providers.NotifyDeployFailed, App: "web", Release: "R2", Previous: "R1", Reason: "canceled", RolledBack: true},
			want: []string{
				"GET " + glDeps + fmt.Sprintf(glList, 1),
				"PUT " + glDeps + `/3 {"status":"canceled"}`,
				"POST " + glStatus + ` {"state":"canceled","ref":"main","name":"convox/production","description":"R2 failed, rolled back to R1: canceled"}`,
			},
			final: []string{"canceled"},
		},
		{
			name:  "a running deployment of another environment is not touched",
			seeds: []glDeployment{running(4, "staging", shaR2)},
			mod:   func(g *notify.GitLab) { g.NoCommitStatus = true },
			n:     providers.Notification{Kind: providers.NotifyDeployFailed, App: "web", Release: "R2", Reason: "exit 1"},
			want: []string{
				"GET " + glDeps + fmt.Sprintf(glList, 1),
				"POST " + glDeps + ` {"environment":"production","sha":"` + shaR2 + `","ref":"main","tag":false,"status":"failed"}`,
			},
			final: []string{"running", "failed"},
		},
		{
			name: "a rollback creates a successful deployment of the release rolled back to, with its tag",
			mod:  func(g *notify.GitLab) { g.NoCommitStatus = true; g.Environment = "" },
			n:    providers.Notification{Kind: providers.NotifyRollback, App: "web", Release: "R1", Previous: "R2"},
			want: []string{
				"POST " + glDeps + ` {"environment":"web","sha":"` + shaR1 + `","ref":"v1","tag":true,"status":"success"}`,
			},
		},
		{
			name: "the status name and target URL are configurable",
			mod: func(g *notify.GitLab) {
				g.StatusName = "deploy"
				g.LogURL = func(n providers.Notification) string { return "https://logs.example.com/" + n.Release }
			},
			n: providers.Notification{Kind: providers.NotifyDeployStarted, App: "web", Release: "R2"},
			want: []string{
				"POST " + glDeps + ` {"environment":"production","sha":"` + shaR2 + `","ref":"main","tag":false,"status":"running"}`,
				"POST " + glStatus + ` {"state":"running","ref":"main","name":"deploy","description":"Deploying R2","target_url":"https://logs.example.com/R2"}`,
			},
			final: []string{"running"},
		},
		{
			name: "a release without a commit in this project is skipped",
			n:    providers.Notification{Kind: providers.NotifyDeployStarted, App: "web", Release: "R9"},
		},
		{
			name: "a notification that is not about a deployment is skipped",
			n:    providers.Notification{Kind: "log-alert", App: "web", Release: "R2"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeGitLab(t, tt.seeds...)
			g := f.notifier()
			if tt.mod != nil {
				tt.mod(&g)
			}
			if err := g.Notify(context.Background(), tt.n); err != nil {
				t.Fatalf("Notify: %v", err)
			}
			if diff := gocmp.Diff(tt.want, f.log()); diff != "" {
				t.Errorf("requests (-want +got):\n%s", diff)
			}
			var final []string
			for _, d := range f.deployments {
				if d.SHA == shaR2 {
					final = append(final, d.Status)
				}
			}
			if diff := gocmp.Diff(tt.final, final); diff != "" {
				t.Errorf("statuses of R2's deployments (-want +got):\n%s", diff)
			}
		})
	}
}

func TestGitLabDeployLifecycle(t *testing.T) {
	f := newFakeGitLab(t)
	g := f.notifier()
	ctx := context.Background()
	for _, n := range []providers.Notification{
		{Kind: providers.NotifyDeployStarted, App: "web", Release: "R2"},
		{Kind: providers.NotifyDeploySucceeded, App: "web", Release: "R2"},
		// A second start of the same commit sets a status the commit
		// had before: GitLab's "Cannot transition status" is success.
		{Kind: providers.NotifyDeployStarted, App: "web", Release: "R2"},
		{Kind: providers.NotifyDeployStarted, App: "web", Release: "R2"},
	} {
		if err := g.Notify(ctx, n); err != nil {
			t.Fatalf("Notify %s: %v", n.Kind, err)
		}
	}
	var got []string
	for _, d := range f.deployments {
		got = append(got, d.Status)
	}
	if diff := gocmp.Diff([]string{"success", "running", "running"}, got); diff != "" {
		t.Errorf("deployments (-want +got):\n%s", diff)
	}
}

func TestGitLabFailures(t *testing.T) {
	started := providers.Notification{Kind: providers.NotifyDeployStarted, App: "web", Release: "R2"}
	done := providers.Notification{Kind: providers.NotifyDeploySucceeded, App: "web", Release: "R2"}
	tests := []struct {
		name     string
		seeds    []glDeployment
		mod      func(*notify.GitLab)
		faults   []glFault
		n        providers.Notification
		category string
		// contains are parts of the error text.
		contains []string
		requests int
	}{
		{name: "a wrong token is a permission error without the token", mod: func(g *notify.GitLab) { g.Token = "glpat-wrong-token" },
			n: started, category: "permission", contains: []string{"401 Unauthorized", "create a running deployment"}, requests: 1},
		{name: "an unknown project is a permission error", mod: func(g *notify.GitLab) { g.Project = "acme/api" },
			n: started, category: "permission", contains: []string{"404 Project Not Found"}, requests: 1},
		{name: "a 5xx on creating a deployment is not retried: it may have been created",
			faults: []glFault{{"POST", "/deployments", 502, "bad gateway", 9}}, n: started, category: "unavailable", contains: []string{"HTTP 502", "attempt 1 of 4"}, requests: 1},
		{name: "a 429 on creating a deployment is retried",
			faults: []glFault{{"POST", "/deployments", 429, `{"message":"Retry later"}`, 2}}, n: started, category: "nil", requests: 4},
		{name: "a 5xx on an update is retried until it succeeds", seeds: []glDeployment{running(5, "production", shaR2)},
			faults: []glFault{{"PUT", "/deployments/5", 503, "", 2}}, n: done, category: "nil", requests: 5},
		{name: "retries stop after MaxAttempts with the last error", seeds: []glDeployment{running(5, "production", shaR2)},
			mod:    func(g *notify.GitLab) { g.MaxAttempts = 2 },
			faults: []glFault{{"GET", "/deployments", 500, `{"message":"500 Internal Server Error"}`, 9}}, n: done, category: "unavailable",
			contains: []string{"find the running deployment", "attempt 2 of 2", "500 Internal Server Error"}, requests: 2},
		{name: "an invalid request is not retried and GitLab's error is kept",
			faults: []glFault{{"POST", "/deployments", 400, `{"message":{"sha":["is invalid"]}}`, 1}}, n: started, category: "invalid",
			contains: []string{"HTTP 400", `{"message":{"sha":["is invalid"]}}`}, requests: 1},
		{name: "a commit status failure is reported after the deployment was recorded",
			faults: []glFault{{"POST", "/statuses/" + shaR2, 403, `{"message":"403 Forbidden"}`, 1}}, n: started, category: "permission",
			contains: []string{"set commit status running on 2a5e9c1d7f3b:"}, requests: 2},
		{name: "an empty SHA from Commit is invalid before any request",
			mod: func(g *notify.GitLab) {
				g.Commit = func(providers.Notification) (notify.GitLabCommit, bool) {
					return notify.GitLabCommit{Ref: "main"}, true
				}
			}, n: started, category: "invalid", contains: []string{"empty SHA"}},
		{name: "a missing project is invalid before any request", mod: func(g *notify.GitLab) { g.Project = "" }, n: started, category: "invalid", contains: []string{"Project"}},
		{name: "a missing token is invalid before any request", mod: func(g *notify.GitLab) { g.Token = "" }, n: started, category: "invalid", contains: []string{"Token is required"}},
		{name: "a missing Commit is invalid before any request", mod: func(g *notify.GitLab) { g.Commit = nil }, n: started, category: "invalid", contains: []string{"Commit is required"}},
		{name: "a relative BaseURL is invalid before any request", mod: func(g *notify.GitLab) { g.BaseURL = "/api/v4" }, n: started, category: "invalid", contains: []string{"BaseURL"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeGitLab(t, tt.seeds...)
			for _, fl := range tt.faults {
				f.fail(fl)
			}
			g := f.notifier()
			if tt.mod != nil {
				tt.mod(&g)
			}
			err := g.Notify(context.Background(), tt.n)
			if diff := gocmp.Diff(tt.category, category(err)); diff != "" {
				t.Errorf("error category (-want +got):\n%s\nerror: %v", diff, err)
			}
			for _, s := range tt.contains {
				if err == nil || !strings.Contains(err.Error(), s) {
					t.Errorf("error %v does not contain %q", err, s)
				}
			}
			if err != nil && (strings.Contains(err.Error(), glToken) || strings.Contains(err.Error(), "wrong-token")) {
				t.Errorf("error %q shows the token", err)
			}
			if diff := gocmp.Diff(tt.requests, len(f.log())); diff != "" {
				t.Errorf("requests (-want +got):\n%s\n%s", diff, strings.Join(f.log(), "\n"))
			}
		})
	}
}

func TestGitLabHonorsContext(t *testing.T) {
	f := newFakeGitLab(t)
	f.fail(glFault{"POST", "/deployments", 429, "", 99})
	g := f.notifier()
	g.MinBackoff, g.MaxBackoff = time.Hour, time.Hour
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := g.Notify(ctx, providers.Notification{Kind: providers.NotifyDeployStarted, App: "web", Release: "R2"})
	if err == nil || !strings.Contains(err.Error(), "would be after the deadline") || !errors.Is(err, providers.ErrThrottled) {
		t.Errorf("Notify = %v, want a throttled error that stops before the deadline", err)
	}
}

func TestGitLabStringHidesToken(t *testing.T) {
	g := notify.GitLab{Project: "acme/web", Token: glToken, BaseURL: "https://user:pw@gitlab.example.com/api/v4?x=1"}
	want := "notify.GitLab{Project:acme/web BaseURL:https://gitlab.example.com/api/v4 Environment: Token:<redacted>}"
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q"} {
		if diff := gocmp.Diff(want, fmt.Sprintf(verb, g)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", verb, diff)
		}
	}
}
