package kinesislogs_test

import (
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/convox-go/convox/internal/awstest"
	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/kinesislogs"
	"github.com/convox-go/convox/providers/providertest"
)

// emulator returns a client of the emulator's Kinesis and a new stream of
// two shards.
func emulator(t *testing.T, e awstest.Emulator) (*kinesis.Client, string) {
	t.Helper()
	cfg := e.Config()
	if e.Backend == awstest.Moto {
		cfg.APIOptions = append(cfg.APIOptions, awstest.OneAtATime("PutRecords"))
	}
	client := kinesis.NewFromConfig(cfg)
	stream := awstest.Name(t, "logs")
	if err := kinesislogs.EnsureStream(t.Context(), client, stream, &kinesislogs.StreamOptions{Shards: 2}); err != nil {
		t.Fatalf("EnsureStream: %v", err)
	}
	return client, stream
}

func TestConformance(t *testing.T) {
	awstest.Emulators(t, func(t *testing.T, e awstest.Emulator) {
		client, stream := emulator(t, e)
		l := kinesislogs.New(client, stream, nil)
		providertest.TestLogs(t, providertest.LogsHarness{New: func(*testing.T) providers.Logs { return l }, Timeout: 30 * time.Second})
	})
}
