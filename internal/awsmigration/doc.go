// Package awsmigration holds end-to-end tests of the convox client's three
// migrations on the AWS providers against the test harness: the AWS
// emulator (ELBv2, ECR's API, CloudWatch Logs, Kinesis, and DynamoDB for
// the store), the wire-level ECS and classic ELB test servers of packages
// ecstest and elbtest, and in-process OCI registries. It has no code of
// its own; its tests skip when the emulator is not running.
//
//	eval "$(scripts/kumo start)"
//	go test ./internal/awsmigration
//
// Each test builds clients over real providers and, to stand for a process
// that crashed and was started again, builds a second client over new
// provider instances sharing nothing with the first but the endpoints and
// the store's documents.
//
// # Registry: Docker registry → ECR
//
// An app deployed on ECS from a self-hosted Docker registry (an in-process
// registry on the loopback interface, through package ociregistry) moves to
// ECR (package ecrregistry on the emulator). The emulator serves ECR's API
// but not its OCI data path, so a second in-process registry stands in for
// the data path: the ECR provider reaches it through its Options.Transport
// and the migration's copy through MigrateOptions.Transport, and, as ECR
// does, it makes every manifest pushed to it an image of the API (PutImage
// on the emulator), so that what the copy pushed is what BatchGetImage and
// ListImages report. The migration is interrupted after its first image,
// resumed, checked (releases pinned to ECR by the same digests, nothing
// sent again for the image already copied), and followed by a rollback
// with the Docker registry shut down.
//
// # Logs: Kinesis → CloudWatch Logs
//
// An ECS app's platform lines move from package kinesislogs to package
// cwlogs through a logtee.Tee, with a crash between the switch and the
// cutover that a new tee of the same Since continues; reads through the
// client span both backends in order, each line once.
//
// # Balancer: what ECS allows
//
// A balancer migration serves an app on both balancers at once, so the
// scheduler must attach each routed process to both routes' bindings. ECS
// attaches a service to one classic load balancer, or to up to five target
// groups of application or network load balancers, never to both kinds;
// package ecsscheduler runs a paired service for the other kind. An app on
// ECS moves from a classic load balancer (package elbbalancer, on the
// elbtest server) to an ALB (package albbalancer, on each emulator): both
// serve after StartBalancerMigration, FinishBalancerMigration retires the
// old service and load balancer, AbortBalancerMigration the paired
// service and the ALB's route; requests to each endpoint (resolved to the
// load balancer's healthy targets, as no server here carries traffic)
// never fail while it serves, and the state is read back through the ECS,
// ELB and ELBv2 APIs. An app moves between two ALBs of one account and
// region the same way when each ALB balancer has a namespace of its own
// (albbalancer.Options.Namespace), the service then attached to both
// target groups. Without namespaces both balancers want one target group
// name ("<app>-<process>"), unique per account and region: the tests
// check that StartBalancerMigration is refused then and leaves the app
// serving on its balancer as before, with nothing left on the other one,
// and that deploys and rollbacks go on. Such a refused start costs the whole
// Options.CompensateTimeout, because the compensation of the failed
// re-deploy re-applies the same refused bindings until then; the test
// shortens it.
package awsmigration
