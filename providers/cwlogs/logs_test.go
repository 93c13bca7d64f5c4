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

// TestConformanceOnUnmergedServer runs the suite against an endpoint that
// returns a group's events stream by stream, out of time order, in pages
// of 50: the reader must not skip an event because of its order.
func TestConformanceOnUnmergedServer(t *testing.T) {
	srv, client := testServer(t)
	srv.SetUnmerged(true)
	srv.SetFilterPageCap(50)
	l := cwlogs.New(client, &cwlogs.Options{TailLookback: lookback, TailPollInterval: 50 * time.Millisecond, DisableLiveTail: true})
	providertest.TestLogs(t, providertest.LogsHarness{New: func(*testing.T) providers.Logs { return l }, Timeout: 30 * time.Second})
}

func TestConformanceOnEmulator(t *testing.T) {
	awstest.Emulators(t, func(t *testing.T, e awstest.Emulator) {
		client := cloudwatchlogs.NewFromConfig(e.Config())
		// Neither emulator has StartLiveTail: the tail falls back to
		// polling.
		opts := &cwlogs.Options{TailLookback: lookback, TailPollInterval: 100 * time.Millisecond}
		if e.Backend == awstest.Kumo {
			// kumo matches a filter pattern's raw text, quotes included,
			// where the service matches a quoted term ("Enclose terms that
			// include non-alphanumeric characters in double quotation
			// marks"): the filter is applied on the client only.
			opts.NoFilterPattern = true
		}
		l := cwlogs.New(client, opts)
		providertest.TestLogs(t, providertest.LogsHarness{New: func(*testing.T) providers.Logs { return l }, Timeout: 30 * time.Second})
	})
}
