package awstest

import (
	"context"
	"slices"
	"sync"

	"github.com/aws/smithy-go/middleware"

	"github.com/convox-go/convox/providers"
)

// AtomicWrites returns s with its writes (Put and Delete) made one at a
// time, and its reads (Get and List) kept from seeing a write half done,
// for DynamoDB on moto. DynamoDB documents that "Individual write
// operations such as UpdateItem are atomic and always operate on the most
// recent version of the item, regardless of concurrency" (Best practices
// for handling concurrent updates in DynamoDB); moto evaluates a condition
// and writes in two steps, so two racing conditional writes can both
// succeed there, and a read racing a write can see an item without the
// attributes the write sets.
func AtomicWrites(s providers.Store) providers.Store { return &atomicWrites{Store: s} }

type atomicWrites struct {
	providers.Store
	mu sync.RWMutex
}

func (a *atomicWrites) Get(ctx context.Context, key string) (providers.Doc, error) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.Store.Get(ctx, key)
}

func (a *atomicWrites) List(ctx context.Context, prefix string, opts providers.ListOptions) (providers.DocPage, error) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.Store.List(ctx, prefix, opts)
}

func (a *atomicWrites) Put(ctx context.Context, key string, value []byte, ifVersion int64) (int64, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.Store.Put(ctx, key, value, ifVersion)
}

func (a *atomicWrites) Delete(ctx context.Context, key string, ifVersion int64) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.Store.Delete(ctx, key, ifVersion)
}

// OneAtATime returns a client option (for aws.Config.APIOptions) that
// lets one call of the named operations run at a time, over every client
// built with the configuration it is added to. It is for moto's Kinesis,
// whose PutRecords numbers records without a lock ("this function is not
// safe for concurrency", in its source), so that two concurrent calls can
// give two records one sequence number and keep one; Kinesis gives each
// record its own: "Each data record has a sequence number that is unique
// per partition-key within its shard".
func OneAtATime(ops ...string) func(*middleware.Stack) error {
	var mu sync.Mutex
	return func(stack *middleware.Stack) error {
		return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("awstest.OneAtATime",
			func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
				if slices.Contains(ops, middleware.GetOperationName(ctx)) {
					mu.Lock()
					defer mu.Unlock()
				}
				return next.HandleInitialize(ctx, in)
			}), middleware.After)
	}
}
