// Command convox is a small command-line tool over the convox SDK: the kind
// of CLI an internal tooling team writes in an afternoon. It deploys apps on
// a local rack (one machine, no cloud account, nothing installed but Go) or
// on AWS, and each of its commands is one or two SDK calls.
//
// Build it and deploy the demo app in ./app:
//
//	go build -o convox ./examples/cli
//	./convox apps create hello
//	./convox build examples/cli/app --app hello --tag v1
//	./convox deploy hello:v1 --app hello
//	./convox serve            # holds the rack: curl the endpoint deploy printed
//
// # Commands
//
//	apps create NAME | list | info [NAME] | delete NAME [--yes]
//	build DIR [--tag T]                    build a Go main package into an image in the rack's registry
//	deploy IMAGE [--strategy S] [--wait-timeout D] [--port N] [--health PATH]
//	plan IMAGE [--port N] [--health PATH]  show what deploying IMAGE would change, resources included (stack mode)
//	drift [APP]                            show the app's resources changed outside convox (stack mode)
//	releases list | info ID | diff A B
//	rollback [RELEASE | --previous-healthy | --last-healthy]
//	cancel                                 stop the app's in-flight deploy and restore the previous release
//	scale PROCESS=COUNT
//	env list | set KEY=VALUE... [--secret] | unset KEY...
//	run PROCESS [--release ID] -- CMD...   run a one-off process and exit with its exit code
//	ps
//	logs [-f] [--since D] [--filter S] [--process P]
//	serve [--verbose]                      hold the local rack open until interrupted
//
// Every command accepts the global flags, before or after the command name:
//
//	-a, --app NAME    the app (default $CONVOX_APP)
//	--json            machine-readable output with stable field names
//	--rack local|aws  the rack (default $CONVOX_RACK, else local)
//	--rack-dir DIR    the local rack's directory (default $CONVOX_RACK_DIR, else ./.convox)
//	--wait DURATION   how long to wait for a local rack another program holds (default 30s; 0: fail at once)
//	--debug           show the SDK operation that failed in error messages
//
// "convox help COMMAND" and "convox COMMAND --help" describe a command,
// alike. An error names the command and what it was about ("convox env
// set: app hello: ..."), followed by a hint chosen by its cause.
// "apps delete" asks for the app's name on a terminal, and without one
// fails unless --yes is given.
//
// # Exit codes
//
//	0  success
//	1  the command failed: a deploy failed (and was rolled back), an app or
//	   release was not found, a deploy is already in progress, the local
//	   rack could not be opened (a damaged file, held too long by another
//	   program), the rack cannot do what was asked ("drift" or "run" on a
//	   rack without that capability: --json error code "unimplemented"), ...
//	2  usage error: unknown command or flag, missing or malformed argument
//	   (such as "scale web" without "=COUNT"), input the SDK rejects as
//	   invalid (an app name or image reference it cannot accept), or a
//	   malformed, missing or misplaced CONVOX_AWS_ setting (reported
//	   before any AWS call)
//
// "run" exits with the one-off process's exit code once the process ran;
// errors before it starts use 1 and 2 as above.
//
// With --json, a successful command writes one JSON document to standard
// output ("logs" writes one JSON object per line), and a failed one writes
// {"error": {"code": ..., "message": ...}} there too; human-readable
// messages and deploy progress go to standard error.
//
// # The local rack between commands
//
// The local rack's directory is used by one program at a time, and its app
// processes run only while a program has it open. Each command opens the
// rack, does its work and closes it, so the processes run while a command
// does: "deploy", "logs", "run", "ps" work one after the other, and the
// next command brings the active release's processes back.
//
// To keep the apps serving (to curl them), run "convox serve": it holds the
// rack open until interrupted. While any convox command holds the rack
// (serve, a long deploy, logs -f), other convox commands run inside that
// process through a socket in the rack directory, with their output and
// exit code passed back; so "convox cancel" in a second terminal stops a
// deploy running in the first, and deploys made while "serve" runs are
// served at once. The socket is the owner's: mode 0600, and on Linux the
// holder refuses connections from other users (SO_PEERCRED); elsewhere
// there is no socket and commands wait for the rack instead.
//
// Without a holder, "apps info", "ps" and "logs -f" say that the app is
// not being served and how to serve it, instead of starting its processes
// for their own short life. "serve" prints one status line, then only
// problems; it records each command it runs for others, by name and exit
// code only, in serve.log in the rack directory (--verbose prints them).
// A command that finds the rack held by a program that does not accept
// commands says who holds it and waits up to --wait.
//
// # AWS
//
// With --rack aws the rack is ECR (images), ECS on Fargate (processes), one
// shared application load balancer (routes), CloudWatch Logs (logs) and a
// DynamoDB table (apps and release history). Credentials and region come
// from the standard AWS configuration chain (AWS_PROFILE, AWS_REGION,
// environment credentials, SSO, instance roles); AWS_ENDPOINT_URL and
// AWS_ENDPOINT_URL_<SERVICE> redirect the clients. "convox help aws" lists
// the rack's settings, CONVOX_AWS_CLUSTER, CONVOX_AWS_SUBNETS and the
// like. Images are pushed to ECR with the usual tools; "convox build"
// pushes to the local rack only.
//
// CONVOX_AWS_MODE=stack keeps each app as one CloudFormation stack
// (providers/cfnstack, the rack's scheduler and balancer in one): every
// deploy, scale, environment change and rollback is one stack update that
// CloudFormation rolls back itself when it fails, "convox plan" lists the
// stack's resource changes from a change set, and "convox drift" runs
// CloudFormation's drift detection. The shared load balancer must exist:
// the stack mode needs CONVOX_AWS_SUBNETS, CONVOX_AWS_VPC and
// CONVOX_AWS_HTTP_LISTENER (CONVOX_AWS_HTTPS_LISTENER for HTTPS routes),
// and refuses the direct mode's CONVOX_AWS_LOAD_BALANCER and
// CONVOX_AWS_CERTIFICATE. "convox run" starts a one-off ECS task beside
// the app's stack. The app's log group belongs to CloudWatch Logs, not to
// the stack (cfnstack's ExternalLogGroup): the first deploy's lines,
// written before its stack exists, are kept, and the group is deleted
// with the app. A missing, malformed or misplaced setting is a usage
// error before any AWS call.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop() // a second interrupt ends the program at once
	}()
	os.Exit(runCLI(ctx, os.Args[1:], processStdio()))
}
