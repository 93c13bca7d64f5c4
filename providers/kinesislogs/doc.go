// Package kinesislogs is a providers.Logs on one Amazon Kinesis data
// stream per rack: the log path Convox used before CloudWatch Logs, kept so
// that a rack can run on it and migrate from it to package cwlogs with
// both providers side by side.
//
//	cfg, err := config.LoadDefaultConfig(ctx)
//	if err != nil {
//		return err
//	}
//	client := kinesis.NewFromConfig(cfg)
//	if err := kinesislogs.EnsureStream(ctx, client, "convox-logs", nil); err != nil {
//		return err
//	}
//	logs := kinesislogs.New(client, "convox-logs", nil)
//
// # Records
//
// Every entry is one record, a JSON object
//
//	{"convox":1,"app":"web","id":"...","t":<Unix nanoseconds>,"stream":"...","process":"...","release":"...","msg":"..."}
//
// whose partition key is the app's name, so all of an app's records go
// to the shard whose hash key range holds the MD5 of the name (and, after
// a resharding, to its children), in arrival order. Reads only read those
// shards. Records that are not such objects (other producers of the
// stream) are skipped. Times keep their nanoseconds.
//
// Write sends records with PutRecords in the fewest calls the API limits
// allow (Batches: at most MaxBatchRecords records and MaxBatchBytes bytes
// per call, MaxRecordBytes per record, partition keys included), sends
// again with backoff the records the service failed one by one (a
// throttled shard), and creates the stream when it is missing.
//
// # Reading
//
// Read reads the app's shards with shard iterators from the positions of
// its page token, else from Start (AT_TIMESTAMP, Options.ClockSkew early,
// because records are positioned by arrival time), else from the oldest
// record (TRIM_HORIZON), and merges the shards by entry time. Page tokens
// encode, per shard, the sequence number up to which records were
// consumed. See Logs.Read for ordering: Kinesis keeps arrival order, so
// entries written out of time order are ordered within a page only.
// There is no live tail (providers.LogTailer): the root follows logs by
// reading again.
//
// # Deletion
//
// Kinesis cannot delete records; they expire with the stream's retention
// (24 hours by default). Delete appends a deletion marker record to the
// app's shard, and reads hide the app's records that arrived before it:
// earlier records of the same shard and every record of the shard's
// ancestors. To know the markers, a Logs keeps an index of the markers of
// each shard it reads and, before each read, brings it up to the shard's
// latest record, reading only the records added since the previous read
// (the first read of a shard by a program reads the shard once in full).
// Entries written after a Delete are visible again.
//
// # Errors
//
// SDK errors pass through internal/awserr and match one sentinel of
// package providers while still unwrapping to the smithy.APIError:
// ProvisionedThroughputExceededException and LimitExceededException are
// ErrThrottled (and records failed one by one with it, after five
// attempts), AccessDeniedException is ErrPermission,
// InvalidArgumentException and ValidationException are ErrInvalid,
// InternalFailure and transport failures are ErrUnavailable.
// ResourceNotFoundException is
// never returned: Write creates the stream, Read of a missing stream is
// an empty page and Delete of one is nil. Invalid entries, foreign page
// tokens and negative limits are ErrInvalid before any call. A canceled
// context is returned as the context's error.
//
// # Emulators
//
// Where an endpoint refuses AT_TIMESTAMP iterators with
// InvalidArgumentException (the kumo emulator does), a Logs remembers it
// and reads from TRIM_HORIZON, filtering by time; the result is the same,
// the cost higher.
//
// # Permissions
//
// The provider needs these IAM actions on the stream
// (arn:aws:kinesis:<region>:<account>:stream/<name>):
//
//	kinesis:PutRecords              Write, Delete
//	kinesis:ListShards              Read
//	kinesis:GetShardIterator        Read
//	kinesis:GetRecords              Read
//	kinesis:DescribeStreamSummary   EnsureStream, Write (a missing stream)
//	kinesis:CreateStream            EnsureStream, Write (a missing stream)
//
// A stream encrypted with a customer-managed KMS key also needs
// kms:GenerateDataKey (writing) and kms:Decrypt (reading) on the key.
//
// # Capabilities
//
// Logs implements providers.Logs only; it has no optional capabilities.
package kinesislogs
