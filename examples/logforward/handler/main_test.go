package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/google/go-cmp/cmp"

	"github.com/convox-go/convox/logforward"
	"github.com/convox-go/convox/providers/notify"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

// TestAlertReachesAWebhook invokes the handler as CloudWatch Logs invokes
// a Lambda destination ({"awslogs":{"data":...}}, the format of the
// Lambda documentation's example) with a worker's crash loop, and checks
// that one signed alert reaches the webhook.
func TestAlertReachesAWebhook(t *testing.T) {
	secret := "a-long-shared-secret"
	var mu sync.Mutex
	var got []notify.WebhookPayload
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := notify.VerifySignature([]byte(secret), r.Header.Get(notify.HeaderSignature), r.Header.Get(notify.HeaderTimestamp), body); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		var p notify.WebhookPayload
		json.Unmarshal(body, &p)
		mu.Lock()
		got = append(got, p)
		mu.Unlock()
	}))
	defer srv.Close()
	h, err := New(env(map[string]string{"LOGFORWARD_WEBHOOK_URL": srv.URL, "LOGFORWARD_WEBHOOK_SECRET": secret}), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	for task := range 3 {
		p := logforward.Payload{MessageType: logforward.DataMessage, Owner: "123456789012", LogGroup: "/convox/shop", LogStream: fmt.Sprintf("worker/worker/task%d", task), SubscriptionFilters: []string{"logforward"}}
		for i, msg := range []string{"starting", "panic: runtime error: index out of range [3] with length 3"} {
			p.LogEvents = append(p.LogEvents, events.CloudwatchLogsLogEvent{ID: fmt.Sprint(task*10 + i), Timestamp: t0.UnixMilli() + int64(task*10+i), Message: msg})
		}
		inv, _ := json.Marshal(events.CloudwatchLogsEvent{AWSLogs: events.CloudwatchLogsRawData{Data: base64.StdEncoding.EncodeToString(logforward.Encode(p))}})
		if _, err := h.Invoke(t.Context(), inv); err != nil {
			t.Fatalf("Invoke: %v", err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	var summaries []string
	for _, p := range got {
		summaries = append(summaries, string(p.Kind)+" "+p.App+" "+p.Summary)
	}
	want := []string{"log-alert shop alert: 1 matching line in worker (first from task0)"}
	if diff := cmp.Diff(want, summaries); diff != "" {
		t.Errorf("webhook deliveries (-want +got):\n%s", diff)
	}
}

func TestNewRefusesBadSettings(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"no sink", nil, "no sink"},
		{"a webhook without a secret", map[string]string{"LOGFORWARD_WEBHOOK_URL": "https://hooks.example.com/x"}, "without LOGFORWARD_WEBHOOK_SECRET"},
		{"a window that is not a duration", map[string]string{"LOGFORWARD_SLACK_URL": "https://hooks.example.com/x", "LOGFORWARD_ALERT_WINDOW": "soon"}, "not a positive duration"},
		{"a pattern that does not compile", map[string]string{"LOGFORWARD_HTTP_URL": "https://logs.example.com", "LOGFORWARD_PATTERN": `"open`}, "unbalanced quote"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(env(tt.env), slog.New(slog.DiscardHandler))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New = %v, want an error saying %q", err, tt.want)
			}
		})
	}
}
