package convox

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/convox-go/convox/providers"
)

// keepSecrets replaces the secret values of doc by references when sch
// keeps secrets (providers.SecretKeeper), so that the Store holds only
// references. A secret copied from latest keeps its reference, and so does
// one whose given value is latest's reference for the same name (a
// release's Secrets passed back unchanged, as SetEnv does); every other
// value is sent to KeepSecret, once; a keeper that answers
// ErrUnimplemented (set up without a secret service) leaves the values in
// the release. It runs after every check of the
// release, just before it is written.
func keepSecrets(ctx context.Context, sch schedulerCalls, doc, latest *releaseDoc) error {
	keeper, ok := sch.secretKeeper()
	if !ok {
		return nil
	}
	for _, name := range slices.Sorted(maps.Keys(doc.Env)) {
		v := doc.Env[name]
		if !v.Secret || v.Ref {
			continue
		}
		if latest != nil {
			if l, ok := latest.Env[name]; ok && l.Secret && l.Ref && l.Value == v.Value {
				doc.Env[name] = l
				continue
			}
		}
		ref, err := keeper.KeepSecret(ctx, doc.App, name, v.Value)
		if errors.Is(err, providers.ErrUnimplemented) {
			// This scheduler was set up without a secret service: the
			// values stay in the release, as with any other scheduler.
			return nil
		}
		if err != nil {
			return fmt.Errorf("keep secret %s: %w", name, err)
		}
		doc.Env[name] = envDoc{Value: ref, Secret: true, Ref: true}
	}
	return nil
}
