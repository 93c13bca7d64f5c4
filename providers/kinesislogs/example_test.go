package kinesislogs_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/kinesislogs"
)

// Example reads the last hour of an app's logs from the rack's Kinesis
// stream, as a migration to CloudWatch Logs would before switching.
func Example() {
	ctx := context.Background()
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		log.Fatal(err)
	}
	client := kinesis.NewFromConfig(cfg)
	if err := kinesislogs.EnsureStream(ctx, client, "convox-logs", nil); err != nil {
		log.Fatal(err)
	}
	logs := kinesislogs.New(client, "convox-logs", nil)

	q := providers.LogQuery{App: "web", Start: time.Now().Add(-time.Hour)}
	for token := ""; ; {
		page, err := logs.Read(ctx, q, token)
		if err != nil {
			log.Fatal(err)
		}
		for _, e := range page.Entries {
			fmt.Println(e.Time.Format(time.RFC3339Nano), e.Process, e.Stream, e.Message)
		}
		if token = page.Next; token == "" {
			break
		}
	}
}
