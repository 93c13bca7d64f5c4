// Package cwlogs is a providers.Logs on Amazon CloudWatch Logs, with a
// live tail (providers.LogTailer) and a buffered writer for high volume.
//
//	cfg, err := config.LoadDefaultConfig(ctx)
//	if err != nil {
//		return err
//	}
//	logs := cwlogs.New(cloudwatchlogs.NewFromConfig(cfg), nil)
//	rack := convox.Rack{Logs: logs /* , Registry, Scheduler, ... */}
//
// # Log groups and streams
//
// Each app has one log group, Options.GroupPrefix followed by the app
// name: "/convox/<app>" by default (Logs.Group). The ECS scheduler's
// awslogs configuration names the same group by default, so the
// containers' output and the platform's own events share it; a rack that
// changes the prefix sets the scheduler's LogGroup to match.
//
// Within the group, the entries of one process and one stream (a task, or
// providers.StreamPlatform) go to the log stream
// "<process>/<process>/<stream>" (StreamName): the layout the awslogs
// driver uses with the stream prefix and the container both named after
// the process, as the ECS scheduler configures it, so a task's stream is
// "web/web/<task-id>" whether the driver or Write made it. Reading maps
// stream names back with ParseStreamName; a stream of another layout reads
// as a stream of no process.
//
// # Entries and the message envelope
//
// Write stores each entry as one event whose timestamp is the entry's time
// in milliseconds (CloudWatch's precision; finer times are truncated) and
// whose message is a JSON envelope holding what the stream name does not:
//
//	{"convox":1,"id":"<entry ID>","release":"<release>","message":"<message>"}
//
// (HTML characters are not escaped, so the message text appears as it is
// unless it holds quotes, backslashes or control characters.) Reading
// decodes the envelope; an event without one — a line the awslogs driver
// wrote — reads as an entry with that message, no release, and the ID
// "<log stream>:<event ID>". So:
//
//	LogEntry.App      the group (Options.GroupPrefix + app)
//	LogEntry.Process  the stream name's first component
//	LogEntry.Stream   the stream name's last component
//	LogEntry.Time     the event timestamp (milliseconds)
//	LogEntry.ID       the envelope's id, else the stream and event ID
//	LogEntry.Release  the envelope's release, else ""
//	LogEntry.Message  the envelope's message, else the event message
//
// # Writing
//
// Write sorts each stream's entries by time and sends them with the fewest
// PutLogEvents calls the API allows (Batches): at most MaxBatchEvents
// events and MaxBatchBytes bytes, counting EventOverhead per event, per
// call, spanning at most MaxBatchSpan. The group and the stream are
// created on first use: a PutLogEvents that fails with
// ResourceNotFoundException creates them (an existing one is fine) and is
// sent again. For programs that log line by line, a BufferedWriter
// gathers entries and flushes them by size, count and interval, and on
// Close. Writing 100,000 entries of mixed sizes makes one call more than
// the API minimum (see BenchmarkWrite100k) instead of 100,000.
//
// # Reading and tailing
//
// Read uses FilterLogEvents, which interleaves the group's streams in
// time order; see Logs.Read for how the query maps onto it and how page
// tokens work on endpoints that never return a nextToken of their own.
// Tail uses StartLiveTail and falls back to polling; see Logs.Tail.
// GetLogEvents, whose forward tokens some emulators never repeat (so that
// the end of a stream cannot be recognized), is not used.
//
// # Emulators
//
// The provider works against emulators that implement CloudWatch Logs
// partly, such as kumo: page tokens do not depend on FilterLogEvents
// returning a nextToken; raw event IDs are qualified by their stream, so
// event IDs unique only per stream are enough; a StartLiveTail the
// endpoint does not know (kumo answers UnrecognizedClientException) makes
// Tail poll. An endpoint that matches a filter pattern's text literally,
// quotes included, needs Options.NoFilterPattern.
//
// # Errors
//
// SDK errors pass through internal/awserr and match one sentinel of
// package providers while still unwrapping to the smithy.APIError:
// ThrottlingException and LimitExceededException are ErrThrottled (the
// SDK's retryer has already backed off), AccessDeniedException and
// UnrecognizedClientException are ErrPermission,
// InvalidParameterException is ErrInvalid, ServiceUnavailableException and
// transport failures are ErrUnavailable. ResourceNotFoundException is
// never returned: Write creates what is missing, Read of a missing group
// is an empty page, Delete of one is nil. ResourceAlreadyExistsException
// while creating is success. Entries without App or Stream, messages over
// MaxEventBytes with their envelope, foreign page tokens and negative
// limits are ErrInvalid before any call; events the service rejects as too
// old or too new are ErrInvalid after the rest were written. A canceled
// context is returned as the context's error.
//
// # Permissions
//
// The provider needs these IAM actions on the groups under the prefix
// (arn:aws:logs:<region>:<account>:log-group:/convox/*):
//
//	logs:CreateLogGroup      Write (first use), Tail (to start a session before the first Write)
//	logs:CreateLogStream     Write (first use)
//	logs:PutLogEvents        Write, BufferedWriter
//	logs:FilterLogEvents     Read, Tail (baseline and polling)
//	logs:DescribeLogGroups   Tail (the group's ARN)
//	logs:StartLiveTail       Tail (optional: without it Tail polls)
//	logs:DeleteLogGroup      Delete
//	logs:PutSubscriptionFilter        Subscribe
//	logs:DescribeSubscriptionFilters  Subscriptions
//	logs:DeleteSubscriptionFilter     Unsubscribe
//	iam:CreateRole           Subscribe to Kinesis or Firehose without a RoleARN (on roles under /convox/)
//	iam:GetRole              the same, when the destination's role exists
//	iam:PutRolePolicy        the same (the role's inline policy)
//	iam:PassRole             Subscribe to Kinesis or Firehose (passing the role to CloudWatch Logs)
//
// The subscription actions apply to the log groups; a program that names
// RoleARN in every subscription needs none of the iam actions but
// iam:PassRole on those roles.
//
// # Capabilities
//
// Logs implements providers.Logs and the optional providers.LogTailer and
// providers.LogSubscriber (subscription filters forwarding an app's logs
// to a Lambda function, a Kinesis stream or a Firehose stream; see
// Logs.Subscribe). A
// live tail against a custom endpoint (Options of the client with a
// BaseEndpoint, as for an emulator or a VPC endpoint) is sent with the
// SDK's endpoint host prefix disabled (smithyhttp.DisableEndpointHostPrefix,
// set in the call's middleware stack), so it reaches that endpoint instead
// of "stream-<host>".
package cwlogs
