package awstest

import (
	"context"
	"sync"

	"github.com/convox-go/convox/providers"
)

// AtomicWrites returns s with its writes (Put and Delete) made one at a
// time, for DynamoDB on moto. DynamoDB documents that "Individual write
// operations such as UpdateItem are atomic and always operate on the most
// recent version of the item, regardless of concurrency" (Best practices
// for handling concurrent updates in DynamoDB); moto evaluates a condition
// and writes in two steps, so two racing conditional writes can both
// succeed there.
func AtomicWrites(s providers.Store) providers.Store { return &atomicWrites{Store: s} }

type atomicWrites struct {
	providers.Store
	mu sync.Mutex
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
