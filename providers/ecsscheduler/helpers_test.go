package ecsscheduler_test

import (
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/convox-go/convox/providers"
)

var (
	ignoreStarted = cmpopts.IgnoreFields(providers.Rollout{}, "Started")
	cmpSDK        = cmpopts.IgnoreUnexported(types.LoadBalancer{})
	_             = cmp.Diff
)
