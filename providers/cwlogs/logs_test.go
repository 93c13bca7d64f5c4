package cwlogs_test

import (
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"

	"github.com/convox-go/convox/internal/awstest"
	"github.com/convox-go/convox/internal/cwlogstest"
	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/cwlogs"
	"github.com/convox-go/convox/providers/providertest"
)

// testServer starts an in-process CloudWatch Logs endpoint and returns it
// with a client of it.
func testServer(t *testing.T) (*cwlogstest.Server, *cloudwatchlogs.Client) {
	t.Helper()
	srv := cwlogstest.NewServer(t)
	return srv, cloudwatchlogs.NewFromConfig(awstest.ConfigFor(srv.URL))
}

// The polling tail must look back further than the conformance suite's
// entry times (an hour ago).
const lookback = 2 * time.Hour

func TestConformanceOnTestServer(t *testing.T) {
	srv, client := testServer(t)
	// Partial FilterLogEvents pages with tokens, as the service returns
	// when a search is cut short.
	srv.SetFilterPageCap(3)
	l := cwlogs.New(client, &cwlogs.Options{TailLookback: lookback, TailPollInterval: 50 * time.Millisecond})
	providertest.TestLogs(t, providertest.LogsHarness{New: func(*testing.T) providers.Logs { return l }, Timeout: 30 * time.Second})
}

func TestConformanceOnEmulator(t *testing.T) {
	client := cloudwatchlogs.NewFromConfig(awstest.Config(t))
	// The emulator matches a filter pattern's raw text, quotes included,
	// and has no StartLiveTail: the tail falls back to polling.
	l := cwlogs.New(client, &cwlogs.Options{NoFilterPattern: true, TailLookback: lookback, TailPollInterval: 100 * time.Millisecond})
	providertest.TestLogs(t, providertest.LogsHarness{New: func(*testing.T) providers.Logs { return l }, Timeout: 30 * time.Second})
}
