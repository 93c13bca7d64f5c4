package cwlogs_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"

	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/cwlogs"
)

// Example writes a platform event to an app's log group and reads the
// last minute of the app's logs back.
func Example() {
	ctx := context.Background()
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		log.Fatal(err)
	}
	logs := cwlogs.New(cloudwatchlogs.NewFromConfig(cfg), nil)

	err = logs.Write(ctx, []providers.LogEntry{{
		App: "web", Stream: providers.StreamPlatform, Process: providers.StreamPlatform,
		Release: "R7", Message: "deploy of R7 started",
	}})
	if err != nil {
		log.Fatal(err)
	}
	q := providers.LogQuery{App: "web", Start: time.Now().Add(-time.Minute)}
	for token := ""; ; {
		page, err := logs.Read(ctx, q, token)
		if err != nil {
			log.Fatal(err)
		}
		for _, e := range page.Entries {
			fmt.Println(e.Time.Format(time.RFC3339), e.Process, e.Stream, e.Message)
		}
		if token = page.Next; token == "" {
			break
		}
	}
}

// ExampleLogs_NewBufferedWriter ships a program's output line by line with
// about one PutLogEvents call per megabyte.
func ExampleLogs_NewBufferedWriter() {
	ctx := context.Background()
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		log.Fatal(err)
	}
	logs := cwlogs.New(cloudwatchlogs.NewFromConfig(cfg), nil)
	w := logs.NewBufferedWriter(&cwlogs.BufferOptions{Interval: 2 * time.Second})
	defer func() {
		if err := w.Close(ctx); err != nil {
			log.Print(err)
		}
	}()
	for i := range 100000 {
		line := providers.LogEntry{App: "web", Process: "worker", Stream: "job-42", Message: fmt.Sprintf("processed item %d", i)}
		if err := w.Write(ctx, []providers.LogEntry{line}); err != nil {
			log.Print(err)
		}
	}
}

// ExampleLogs_Tail follows an app's web process as its lines arrive.
func ExampleLogs_Tail() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		log.Fatal(err)
	}
	logs := cwlogs.New(cloudwatchlogs.NewFromConfig(cfg), nil)
	for e, err := range logs.Tail(ctx, providers.LogQuery{App: "web", Process: "web", Filter: "ERROR"}) {
		if err != nil {
			log.Print(err) // the context's error when the minute is over
			break
		}
		fmt.Println(e.Stream, e.Message)
	}
}
