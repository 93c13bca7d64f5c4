package notify_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"time"

	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/notify"
)

func ExampleSlack() {
	// A stand-in for hooks.slack.com that prints what it receives.
	slackAPI := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var msg struct {
			Text        string
			Attachments []struct{ Color string }
		}
		json.NewDecoder(r.Body).Decode(&msg)
		fmt.Println(msg.Text, msg.Attachments[0].Color)
		io.WriteString(w, "ok")
	}))
	defer slackAPI.Close()

	slack := notify.Slack{WebhookURL: slackAPI.URL + "/services/T000/B000/XXXX"}
	err := slack.Notify(context.Background(), providers.Notification{
		Kind: providers.NotifyDeployFailed, App: "web", Release: "R2", Previous: "R1",
		Reason: "exit status 2", RolledBack: true,
	})
	fmt.Println(err)

	// The webhook URL is a secret; printing the notifier hides its path.
	fmt.Println(notify.Slack{WebhookURL: "https://hooks.slack.com/services/T000/B000/XXXX"})
	// Output:
	// web: deploy of R2 failed; rolled back to R1 #a30200
	// <nil>
	// notify.Slack{WebhookURL:https://hooks.slack.com/<redacted>}
}

func ExampleWebhook() {
	secret := []byte("shared secret")

	// A receiver that checks signatures and discards repeated deliveries.
	seen := map[string]bool{}
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		err := notify.VerifySignature(secret, r.Header.Get(notify.HeaderSignature), r.Header.Get(notify.HeaderTimestamp), body)
		if err != nil {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		var p notify.WebhookPayload
		if err := json.Unmarshal(body, &p); err != nil {
			http.Error(w, "bad payload", http.StatusBadRequest)
			return
		}
		if !seen[p.ID] {
			seen[p.ID] = true
			fmt.Printf("v%d %s %s %s (previous %s) rolled back: %t\n", p.Version, p.Kind, p.App, p.Release, p.PreviousRelease, p.RolledBack)
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer receiver.Close()

	hook := notify.Webhook{URL: receiver.URL, Secret: secret}
	n := providers.Notification{
		Kind: providers.NotifyDeployFailed, App: "web", Release: "R2", Previous: "R1",
		Reason: "exit status 2", RolledBack: true, Time: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC),
	}
	fmt.Println(hook.Notify(context.Background(), n))
	// The same notification again has the same delivery ID.
	fmt.Println(hook.Notify(context.Background(), n))
	// Output:
	// v1 deploy-failed web R2 (previous R1) rolled back: true
	// <nil>
	// <nil>
}

func ExampleVerifySignature() {
	secret := []byte("shared secret")
	handler := func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err == nil {
			err = notify.VerifySignature(secret, r.Header.Get(notify.HeaderSignature), r.Header.Get(notify.HeaderTimestamp), body)
		}
		if err != nil {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}

	signed := []byte(`{"version":1,"kind":"deploy-succeeded"}`)
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	for _, body := range [][]byte{signed, []byte(`{"version":1,"kind":"deploy-failed"}`)} {
		req := httptest.NewRequest(http.MethodPost, "/hook", bytes.NewReader(body))
		req.Header.Set(notify.HeaderTimestamp, ts)
		req.Header.Set(notify.HeaderSignature, notify.Signature(secret, ts, signed))
		rec := httptest.NewRecorder()
		handler(rec, req)
		fmt.Println(rec.Code)
	}
	// Output:
	// 204
	// 401
}

func ExampleGitHub() {
	// A stand-in for api.github.com that prints what it receives.
	githubAPI := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		json.NewDecoder(r.Body).Decode(&body)
		switch {
		case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/deployments"):
			fmt.Println(r.Method, r.URL.Path, body["ref"], body["environment"])
			w.WriteHeader(http.StatusCreated)
			io.WriteString(w, `{"id": 1}`)
		case r.Method == http.MethodGet:
			fmt.Println(r.Method, r.URL.Path)
			io.WriteString(w, `[{"id": 1, "payload": {"app": "web", "release": "R2"}}]`)
		default:
			fmt.Println(r.Method, r.URL.Path, body["state"], body["description"])
			w.WriteHeader(http.StatusCreated)
			io.WriteString(w, `{}`)
		}
	}))
	defer githubAPI.Close()

	gh := notify.GitHub{
		Owner: "acme", Repo: "web", Token: "github-token", BaseURL: githubAPI.URL,
		Environment: "production",
		// The git ref each release was built from, known to the caller
		// (a build record, an image label, ...).
		Ref: func(n providers.Notification) string { return "v2.0.0" },
	}
	ctx := context.Background()
	for _, kind := range []providers.NotificationKind{providers.NotifyDeployStarted, providers.NotifyDeploySucceeded} {
		if err := gh.Notify(ctx, providers.Notification{Kind: kind, App: "web", Release: "R2", Previous: "R1"}); err != nil {
			fmt.Println(err)
		}
	}
	// Output:
	// POST /repos/acme/web/deployments v2.0.0 production
	// POST /repos/acme/web/deployments/1/statuses in_progress Deploying R2
	// GET /repos/acme/web/deployments
	// POST /repos/acme/web/deployments/1/statuses success Deployed R2
}

func ExampleHTTPError() {
	busy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "30")
		w.WriteHeader(http.StatusTooManyRequests)
		io.WriteString(w, "rate_limited")
	}))
	defer busy.Close()

	err := notify.Slack{WebhookURL: busy.URL + "/services/T000/B000/XXXX"}.Notify(context.Background(),
		providers.Notification{Kind: providers.NotifyDeploySucceeded, App: "web", Release: "R2"})
	var herr *notify.HTTPError
	if errors.As(err, &herr) {
		fmt.Println(herr.StatusCode, herr.Message, herr.RetryAfter)
	}
	fmt.Println(errors.Is(err, providers.ErrThrottled), providers.IsTemporary(err))
	// Output:
	// 429 rate_limited 30s
	// true true
}
