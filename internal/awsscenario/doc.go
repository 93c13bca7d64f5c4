// Package awsscenario holds end-to-end scenarios of the convox client on
// the AWS providers against the test harness: ECR on the AWS emulator
// (with an in-process registry for the data path) and ECS on the
// wire-level test server of package ecstest. It has no code of its own;
// its tests skip when the emulator is not running.
//
//	eval "$(scripts/kumo start)"
//	go test ./internal/awsscenario
package awsscenario
