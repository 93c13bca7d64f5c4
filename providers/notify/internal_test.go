package notify

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestBackoff(t *testing.T) {
	lowest := func(n int64) int64 { return 0 }
	highest := func(n int64) int64 { return n - 1 }
	tests := []struct {
		name  string
		randN func(int64) int64
		min   time.Duration
		max   time.Duration
		want  []time.Duration
	}{
		{"the shortest waits are half of each doubling", lowest, time.Second, 30 * time.Second,
			[]time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 15 * time.Second, 15 * time.Second}},
		{"the longest waits double up to the cap", highest, time.Second, 30 * time.Second,
			[]time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 30 * time.Second, 30 * time.Second}},
		{"a cap below the minimum caps the first wait", highest, 10 * time.Second, 3 * time.Second,
			[]time.Duration{3 * time.Second, 3 * time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []time.Duration
			for attempt := 1; attempt <= len(tt.want); attempt++ {
				got = append(got, backoff(attempt, tt.min, tt.max, tt.randN))
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("waits (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("a late attempt does not overflow", func(t *testing.T) {
		if diff := cmp.Diff(30*time.Second, backoff(200, time.Second, 30*time.Second, highest)); diff != "" {
			t.Errorf("wait (-want +got):\n%s", diff)
		}
	})
}

func TestWebhookBackoffDefaults(t *testing.T) {
	tests := []struct {
		name     string
		w        Webhook
		min, max time.Duration
	}{
		{"zero fields take the defaults", Webhook{}, DefaultMinBackoff, DefaultMaxBackoff},
		{"set fields are kept", Webhook{MinBackoff: time.Millisecond, MaxBackoff: time.Second}, time.Millisecond, time.Second},
		{"a maximum below the minimum is raised to it", Webhook{MinBackoff: 5 * time.Second, MaxBackoff: time.Second}, 5 * time.Second, 5 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			minB, maxB := tt.w.backoffs()
			if diff := cmp.Diff([]time.Duration{tt.min, tt.max}, []time.Duration{minB, maxB}); diff != "" {
				t.Errorf("backoffs (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name  string
		value string
		want  time.Duration
	}{
		{"seconds", "7", 7 * time.Second},
		{"seconds with spaces", " 7 ", 7 * time.Second},
		{"an HTTP date in the future", now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{"an HTTP date in the past is no wait", now.Add(-time.Minute).Format(http.TimeFormat), 0},
		{"absent is no wait", "", 0},
		{"zero is no wait", "0", 0},
		{"negative is ignored", "-3", 0},
		{"more than a day is ignored", "86401", 0},
		{"garbage is ignored", "soon", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, parseRetryAfter(tt.value, now)); diff != "" {
				t.Errorf("parseRetryAfter(%q) (-want +got):\n%s", tt.value, diff)
			}
		})
	}
}

func TestSlackField(t *testing.T) {
	tests := []struct {
		name string
		s    string
		n    int
		want string
	}{
		{"short text is escaped whole", "a<b", 10, "a&lt;b"},
		{"text of exactly the limit is kept", "abcde", 5, "abcde"},
		{"longer text is cut with an ellipsis within the limit", "abcdef", 5, "abcd…"},
		{"an escape sequence is never split", "ab&cd", 5, "ab…"},
		{"characters count, not bytes", "ééééé", 4, "ééé…"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, slackField(tt.s, tt.n)); diff != "" {
				t.Errorf("slackField(%q, %d) (-want +got):\n%s", tt.s, tt.n, diff)
			}
		})
	}
}

func TestTruncateAndMessage(t *testing.T) {
	tests := []struct {
		name string
		got  string
		want string
	}{
		{"truncate keeps short text", truncate("héllo", 5), "héllo"},
		{"truncate cuts by characters and ends with an ellipsis", truncate("héllo world", 5), "héll…"},
		{"message prefers a JSON message field", message([]byte(`{"message":"Bad credentials","documentation_url":"x"}`), nil), "Bad credentials"},
		{"message collapses whitespace and control characters", message([]byte("a\n\tb\x00c"), nil), "a b c"},
		{"message drops invalid UTF-8", message([]byte("a\xffb"), nil), "ab"},
		{"message redacts secrets before cutting", message([]byte(strings.Repeat("x", 195)+"token-123"), []string{"token-123"}), strings.Repeat("x", 195) + "<red…"},
		{"message ignores secrets shorter than 4 bytes", message([]byte("a/b"), []string{"/"}), "a/b"},
		{"message is cut to 200 characters", message([]byte(strings.Repeat("y", 300)), nil), strings.Repeat("y", 199) + "…"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, tt.got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestRedactURL(t *testing.T) {
	tests := []struct {
		name, raw, redact, safe string
	}{
		{"a path is redacted", "https://hooks.slack.com/services/T0/B0/xyz", "https://hooks.slack.com/<redacted>", "https://hooks.slack.com/services/T0/B0/xyz"},
		{"a query is redacted", "https://example.com?token=xyz", "https://example.com/<redacted>", "https://example.com"},
		{"user information is dropped", "https://u:p@example.com:8443/", "https://example.com:8443", "https://example.com:8443/"},
		{"a bare host is kept", "http://127.0.0.1:8080", "http://127.0.0.1:8080", "http://127.0.0.1:8080"},
		{"an unparsable URL is redacted whole", "https://example.com/%zz", "<redacted>", "<redacted>"},
		{"a relative URL is redacted whole", "/hooks/xyz", "<redacted>", "<redacted>"},
		{"empty stays empty", "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff([]string{tt.redact, tt.safe}, []string{redactURL(tt.raw), safeURL(tt.raw)}); diff != "" {
				t.Errorf("redactURL, safeURL (-want +got):\n%s", diff)
			}
		})
	}
}
