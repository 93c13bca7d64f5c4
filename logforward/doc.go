// Package logforward analyses and forwards an app's logs in AWS Lambda.
// It reads the data a CloudWatch Logs subscription delivers (see
// convox.AppClient.Subscribe and cwlogs.Logs.Subscribe), maps every event
// back to the app, process, release and task that wrote it, and hands the
// entries to sinks:
//
//   - Alerts notifies through any providers.Notifier (Slack, a webhook)
//     when lines match a rule, once per rule, app and process in a window,
//     so that a crash loop is one alert;
//   - HTTP posts JSON lines to a log service, in bounded batches, with
//     retries;
//   - any Sink of your own.
//
// A program built for Lambda (runtime provided.al2023, binary "bootstrap")
// needs three lines:
//
//	h, err := logforward.New(logforward.Options{Pattern: "?panic ?FATAL", Sinks: sinks})
//	if err != nil {
//		log.Fatal(err)
//	}
//	lambda.Start(h)
//
// The same handler serves a Lambda destination (CloudWatch Logs invokes it
// with {"awslogs":{"data":"<base64 gzip>"}}) and a Kinesis destination
// (the stream's event source mapping invokes it with {"Records":[...]},
// each record's data one gzip payload). Payloads are DATA_MESSAGE, whose
// events are forwarded, or CONTROL_MESSAGE, which CloudWatch Logs sends to
// check a destination and which is skipped.
//
// # Delivery
//
// Delivery is at least once. A Lambda destination's invocation returns an
// error when a sink fails, and Lambda retries it. For Kinesis, set
// FunctionResponseTypes ["ReportBatchItemFailures"] on the event source
// mapping: when a sink fails, the handler reports the first record of the
// failed batch and Lambda resends from there, so that nothing is lost and
// only that batch can be seen twice (entries carry IDs for deduplication).
// Payloads that can never be handled — not gzip JSON, over a limit, from a
// group that is not an app's — are logged and dropped rather than
// retried forever.
//
// # Limits
//
// Every size read is bounded (Limits): the invocation document, each
// compressed payload, each payload after gunzip (a gzip bomb is refused
// without being inflated past the limit), the events of a payload and the
// records of a batch. Sinks get at most Options.MaxBatch entries at once;
// HTTP bounds its requests' bytes and lines.
//
// # Filtering
//
// Options.Pattern applies the subscription's filter pattern (term syntax,
// see Compile) again in the handler, on each entry's message: a destination
// should not assume the pattern was applied upstream (moto, for one,
// delivers every event whatever the pattern), and CloudWatch Logs matches
// the stored event, which for entries written by cwlogs is a JSON
// envelope around the message.
package logforward
