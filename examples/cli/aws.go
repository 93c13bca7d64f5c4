package main

import (
	"context"
	"errors"

	"github.com/convox-go/convox"
)

// openAWS would build the rack from the standard AWS configuration chain.
// The SDK does not have every provider an AWS rack needs yet, so it
// reports which are missing instead of deploying half a rack.
func openAWS(ctx context.Context) (convox.Rack, func() error, error) {
	return convox.Rack{}, nil, withHint(errors.New("--rack aws is not available: the SDK has no CloudWatch Logs provider (providers/cwlogs) yet"),
		"use the local rack (--rack local, the default)")
}
