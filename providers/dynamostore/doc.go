// Package dynamostore is a providers.Store on Amazon DynamoDB: versioned
// documents with compare-and-swap, for release history and app state that
// several programs (deploy bots, CLIs, CI steps) share safely.
//
//	cfg, err := config.LoadDefaultConfig(ctx)
//	if err != nil {
//		return err
//	}
//	db := dynamodb.NewFromConfig(cfg)
//	if err := dynamostore.EnsureTable(ctx, db, "convox"); err != nil {
//		return err
//	}
//	store := dynamostore.New(db, "convox", nil)
//	rack := convox.Rack{Store: store /* , Registry, Scheduler, ... */}
//
// # Table schema
//
// One table holds the documents of any number of racks. Each item has
//
//   - AttrNamespace ("pk", string, partition key): Options.Namespace,
//     "convox" by default — one value per rack;
//   - AttrKey ("sk", string, sort key): the document's full key;
//   - AttrValue ("val", binary): the document's value;
//   - AttrVersion ("ver", number): the document's version;
//   - AttrWrite ("wid", binary): a random ID of the Put that last wrote the
//     item. When the SDK retries a Put whose first attempt was applied but
//     whose answer was lost, the retry's condition fails; the Put then
//     finds its own ID on the item (one consistent GetItem) and succeeds.
//
// Because every document of a namespace shares one partition key value and
// DynamoDB orders a partition by sort key in UTF-8 byte order, a prefix
// listing is a Query (begins_with on the sort key, forward or backward),
// never a Scan, and its order is exactly the byte order the Store contract
// asks for. The trade-off is that one namespace is one partition: DynamoDB
// serves a single partition key value at up to about 3,000 reads and 1,000
// writes per second (strongly consistent reads count double). Deploy state
// — a few documents per deploy — is far below that; a workload that is not
// should use several namespaces (for example one per rack or per team),
// which spread over partitions independently. Hashing keys into several
// buckets would lift the limit but turn every prefix listing into one
// Query per bucket and a merge, and is not worth it for this data.
//
// EnsureTable creates the table with on-demand (PAY_PER_REQUEST) billing
// and this key schema, and accepts an existing table that has it.
//
// # Consistency and versions
//
// Every read is strongly consistent (GetItem and Query with
// ConsistentRead), so a document written is read back at once, and every
// conditional write is a single UpdateItem or DeleteItem with a
// ConditionExpression on AttrVersion, so compare-and-swap is atomic in
// DynamoDB itself:
//
//   - Put with ifVersion 0 requires attribute_not_exists (create only);
//   - Put with a positive ifVersion requires the stored version to equal it
//     and increments it;
//   - Put with providers.AnyVersion has no condition and increments the
//     stored version (if_not_exists for a new document);
//   - Delete with a positive ifVersion requires the stored version to equal
//     it; when the condition fails, a consistent GetItem tells a missing
//     document (ErrNotFound) from a different version (ErrConflict).
//
// A new document's version is the current time in microseconds rather
// than 1, and updates add one to it. Versions therefore still strictly
// increase per document, and a document deleted and created again does not
// reuse a version that a stale writer may still hold (no ABA), as long as
// the writer clocks do not step back by more than the time between the
// delete and the create.
//
// # Paging
//
// List pages hold at most ListOptions.Limit documents (DefaultLimit when
// zero, at most MaxLimit). A page token records the prefix (as a digest),
// the order and the last key returned; the next page is a Query for keys
// after (or, in reverse, before) that key, so documents created, updated
// or deleted between pages never make a key that existed throughout the
// listing appear twice or not at all — even when the last key returned was
// deleted in between. A token from another prefix or order is ErrInvalid.
//
// # Sizes
//
// A DynamoDB item holds at most 400 KB (MaxItemSize, 409,600 bytes),
// attribute names and values together. Put refuses a value larger than
// Store.MaxValueSize(key) — the item's size less the namespace, the key and
// the other attributes, about 409,500 bytes for the root's keys — with
// providers.ErrInvalid before any call. Typical release documents are a
// few KiB; one near the root's largest (see the convox package's Store
// layout) is refused, and its deploy fails before anything changed.
//
// # Errors
//
// SDK errors pass through internal/awserr and match one sentinel of
// package providers while still unwrapping to the smithy.APIError:
// ConditionalCheckFailedException is ErrConflict; ResourceNotFoundException
// (a missing table) is ErrNotFound; ProvisionedThroughputExceededException,
// ThrottlingException and RequestLimitExceeded are ErrThrottled;
// AccessDeniedException and UnrecognizedClientException are ErrPermission;
// ValidationException is ErrInvalid; InternalServerError and transport
// failures are ErrUnavailable. Invalid keys (providers.ValidateKey), bad
// versions and foreign tokens are ErrInvalid before any call. A canceled
// context is returned as the context's error.
//
// # Permissions
//
// The store needs these IAM actions on the table:
//
//	dynamodb:GetItem
//	dynamodb:UpdateItem
//	dynamodb:DeleteItem
//	dynamodb:Query
//
// EnsureTable also needs dynamodb:DescribeTable and dynamodb:CreateTable.
//
// # Capabilities
//
// The Store interface has no optional capabilities; Store implements it
// completely and passes the providertest.TestStore conformance suite.
package dynamostore
