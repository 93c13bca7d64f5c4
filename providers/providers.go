// Package providers defines the small interfaces that back a convox rack and
// the value types they exchange.
//
// A rack is composed of one provider of each kind — Registry, Scheduler,
// Balancer, Logs and Store — plus any number of Notifiers. Each interface is
// deliberately small: a provider method performs one remote primitive and
// returns. Everything shared (validation, defaults, polling, waits, retries,
// rollback, events, error wrapping) lives once, in the root convox package.
//
// New abilities are optional interfaces discovered by type assertion
// (TaskRunner, Canceler, WeightShifter, LogTailer, ImageLister, ImageDeleter,
// BatchStatus), never new methods on the core interfaces, so existing
// providers keep compiling as the SDK grows.
//
// # Errors
//
// Providers report failures by wrapping one of the sentinel errors of this
// package together with the backend's own error, for example
//
//	fmt.Errorf("describe services %q: %w: %w", name, providers.ErrNotFound, err)
//
// so that callers can test the category with errors.Is and still reach the
// raw cause (a smithy.APIError, an *os.PathError, ...) with errors.As.
// A canceled or expired context is returned as the context's error (it
// matches context.Canceled or context.DeadlineExceeded), never as a sentinel.
//
// # Conformance
//
// Package providertest holds the executable form of every contract written
// in the doc comments below. A provider is correct when it passes the suite
// for each interface it implements:
//
//	func TestConformance(t *testing.T) {
//		providertest.TestStore(t, func(t *testing.T) providers.Store { return newStore(t) })
//	}
package providers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"strings"
	"time"
	"unicode/utf8"
)

// Sentinel errors. Providers wrap exactly one of these (with %w) when a
// failure falls into its category.
var (
	// ErrNotFound: the named resource does not exist.
	ErrNotFound = errors.New("not found")
	// ErrAlreadyExists: a create-only operation found the resource present.
	ErrAlreadyExists = errors.New("already exists")
	// ErrConflict: a compare-and-swap or a lease lost to a concurrent writer.
	ErrConflict = errors.New("conflict")
	// ErrInvalid: the request is malformed; retrying it cannot succeed.
	ErrInvalid = errors.New("invalid argument")
	// ErrPermission: the credentials lack the permission for the operation.
	ErrPermission = errors.New("permission denied")
	// ErrThrottled: the backend refused the call because of a rate limit; retry later.
	ErrThrottled = errors.New("throttled")
	// ErrUnavailable: the backend is temporarily unreachable or failing; retry later.
	ErrUnavailable = errors.New("unavailable")
	// ErrUnimplemented: the provider does not support the operation.
	ErrUnimplemented = errors.New("unimplemented")
	// ErrUnhealthy: a release did not become or stay healthy (its rollout
	// failed, its tasks crashed, or its targets failed health checks).
	// The convox package reports a failed deploy with it; a scheduler may
	// wrap it when it reports a rollout failure of its own.
	ErrUnhealthy = errors.New("unhealthy")
)

// IsTemporary reports whether err is worth retrying later: it matches
// ErrThrottled or ErrUnavailable. Context errors are not temporary.
func IsTemporary(err error) bool {
	return errors.Is(err, ErrThrottled) || errors.Is(err, ErrUnavailable)
}

// Invalidf returns an error matching ErrInvalid with a formatted message.
func Invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// ---------------------------------------------------------------------------
// Names

// MaxResourceName is the longest name AWS accepts for a classic load
// balancer or a target group. Names derived by ResourceName fit in it when
// the app and process names pass ValidateName.
const MaxResourceName = 32

// Name length limits. An app name and a process name together, joined by
// a hyphen and followed by a target-set suffix of up to three characters
// and its hyphen, always fit MaxResourceName.
const (
	MaxAppName     = 20
	MaxProcessName = 12
	MaxSetName     = 3
	maxAppProcess  = MaxResourceName - MaxSetName - 1 // "<app>-<process>" budget
)

// ValidateName checks an app or process name: 1 to max characters of
// lowercase letters, digits and single hyphens, starting with a letter and
// not ending with a hyphen. kind ("app", "process") appears in the error,
// which matches ErrInvalid.
func ValidateName(kind, name string, max int) error {
	if name == "" {
		return Invalidf("%s name is empty", kind)
	}
	if len(name) > max {
		return Invalidf("%s name %q is %d characters; the limit is %d", kind, name, len(name), max)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z':
		case c >= '0' && c <= '9' && i > 0:
		case c == '-' && i > 0 && i < len(name)-1 && name[i-1] != '-':
		default:
			return Invalidf("%s name %q: use lowercase letters, digits and single hyphens, starting with a letter (bad character at %d)", kind, name, i)
		}
	}
	return nil
}

// ValidateAppProcess checks an app name, a process name and that the
// resource names derived from them fit the AWS limits.
func ValidateAppProcess(app, process string) error {
	if err := ValidateName("app", app, MaxAppName); err != nil {
		return err
	}
	if err := ValidateName("process", process, MaxProcessName); err != nil {
		return err
	}
	if n := len(app) + 1 + len(process); n > maxAppProcess {
		return Invalidf("app %q and process %q give a %d-character resource name; the limit is %d", app, process, n, maxAppProcess)
	}
	return nil
}

// ResourceName derives the backend resource name for an app's process and
// an optional target set ("" for the default set): "app-process" or
// "app-process-set". Providers use it so that names agree across backends
// and fit MaxResourceName.
func ResourceName(app, process, set string) string {
	if set == "" {
		return app + "-" + process
	}
	return app + "-" + process + "-" + set
}

// MaxNamespace is the longest rack namespace ScopedName takes.
const MaxNamespace = 32

// ScopedName derives the name of an account-wide AWS resource (an ALB
// target group, a classic load balancer: unique per account and region,
// at most MaxResourceName characters) of an app's process in a rack
// namespace. With no namespace it is ResourceName(app, process, ""), the
// names racks without one have always used. With one, it is the first
// characters of "<app>-<process>" (at most MaxScopedReadable, without a
// trailing hyphen, for people to read), a hyphen and ten hexadecimal
// digits of a SHA-256 of "<namespace>/<app>/<process>": the slash occurs
// in none of the three, so two different triples never share the hashed
// text, and names of two racks, of two balancers, or of "shop"+"web-g"
// and "shop-web"+"g" differ (up to a 40-bit hash collision). The result
// is at most 28 characters, leaving "-<set>" (MaxSetName) within
// MaxResourceName, and passes ValidateName. The namespace must pass
// ValidateName with MaxNamespace.
func ScopedName(namespace, app, process string) string {
	if namespace == "" {
		return ResourceName(app, process, "")
	}
	readable := ResourceName(app, process, "")
	if len(readable) > MaxScopedReadable {
		readable = strings.TrimRight(readable[:MaxScopedReadable], "-")
	}
	sum := sha256.Sum256([]byte(namespace + "/" + app + "/" + process))
	return readable + "-" + hex.EncodeToString(sum[:5])
}

// AWS resource names and their length budgets, by resource type (the
// rack's namespace is the ECS cluster, the balancers' Namespace, the
// store's Namespace):
//
//	resource                 unique per          limit  name                                         length
//	ALB target group         account, region       32  ScopedName(ns, app, process)[-<set>]         17 readable + 11 hash + 4 set
//	classic load balancer    account, region       32  ScopedName(ns, app, process)                 17 readable + 11 hash
//	ECS service              cluster              255  <app>_<process>[--<hash>]                    33, 43 staged or paired
//	ECS task-def. family     account, region      255  <cluster>_<app>_<process>[__run]             cluster up to 219
//	SSM parameter            account, region     2048  <prefix>/<app>/<NAME>/<16 hex>               prefix /convox/<cluster>
//	DynamoDB item key        table                  -  (namespace, key) attributes                  -
//
// The readable part of a scoped name is for people; the hash, of text
// joined by a character no part holds, is what keeps names apart.
//
// MaxScopedReadable is the readable part of a ScopedName: 32 characters
// less "-<set>" (4) and "-<10 hexadecimal digits>" (11).
const MaxScopedReadable = MaxResourceName - MaxSetName - 1 - 11

// ValidateNamespace checks a rack namespace for ScopedName: empty, or a
// name that passes ValidateName with MaxNamespace.
func ValidateNamespace(namespace string) error {
	if namespace == "" {
		return nil
	}
	return ValidateName("namespace", namespace, MaxNamespace)
}

// ---------------------------------------------------------------------------
// Registry

// Repository is an image repository in a registry.
type Repository struct {
	// Name is the repository name as the caller gave it ("web").
	Name string
	// URI is the full repository reference used for pushes and pulls
	// ("123.dkr.ecr.us-east-1.amazonaws.com/web", "127.0.0.1:5000/web").
	URI string
}

// Image is an image pinned by digest.
type Image struct {
	// Repository is the full repository reference (Repository.URI).
	Repository string
	// Digest is the manifest digest ("sha256:...").
	Digest string
	// Tag is the tag the image was resolved from, if any.
	Tag string
	// Entrypoint and Cmd come from the image configuration; a process with
	// no command of its own runs Entrypoint followed by Cmd.
	Entrypoint []string
	Cmd        []string
	// Env is the image configuration's environment ("KEY=value").
	Env []string
	// WorkingDir is the image configuration's working directory.
	WorkingDir string
	// Size is the sum of the manifest's layer and config sizes in bytes, when known.
	Size int64
	// Created is the image's creation time, when known.
	Created time.Time
}

// Ref returns the pinned reference "repository@digest".
func (i Image) Ref() string { return i.Repository + "@" + i.Digest }

// Credentials authenticate the OCI data path (push, pull, copy) to a
// registry. No encoding reveals the password: fmt verbs, JSON, gob and
// log/slog print Redacted in its place (see Redacted).
type Credentials struct {
	// Registry is the registry host the credentials are for.
	Registry string
	// Username and Password are basic-auth credentials; both empty means anonymous.
	Username string
	Password string
	// Expires is when the credentials stop working; zero means they do not expire.
	Expires time.Time
}

// String describes the credentials without the password.
func (c Credentials) String() string {
	p := ""
	if c.Password != "" {
		p = "<redacted>"
	}
	return fmt.Sprintf("{Registry:%s Username:%s Password:%s Expires:%s}", c.Registry, c.Username, p, c.Expires.Format(time.RFC3339))
}

// Format implements fmt.Formatter so that every verb redacts the password.
func (c Credentials) Format(f fmt.State, verb rune) { fmt.Fprint(f, c.String()) }

// Registry stores images and resolves references to digests.
type Registry interface {
	// EnsureRepository creates the repository if it does not exist and
	// returns it. Idempotent: calling it again returns the same Repository.
	// An invalid name returns ErrInvalid.
	EnsureRepository(ctx context.Context, name string) (Repository, error)

	// Resolve pins a reference ("web:v2", "web@sha256:...", or a full
	// "host/repo:tag") to the image's digest and configuration. A missing
	// repository, tag or digest returns ErrNotFound; a malformed reference
	// returns ErrInvalid.
	Resolve(ctx context.Context, ref string) (Image, error)

	// Credentials returns credentials for the OCI data path to the named
	// repository. Providers may cache them; they are valid at least until
	// shortly before Expires.
	Credentials(ctx context.Context, repo string) (Credentials, error)
}

// ImageLister is implemented by registries that can enumerate a repository.
type ImageLister interface {
	// ListImages returns the images of a repository ordered by digest.
	// A missing repository returns ErrNotFound.
	ListImages(ctx context.Context, repo string) ([]Image, error)
}

// ImageDeleter is implemented by registries that can delete images.
type ImageDeleter interface {
	// DeleteImage deletes the image with the digest from the repository,
	// with every tag that points to it. Deleting a missing image returns
	// nil (idempotent).
	DeleteImage(ctx context.Context, repo, digest string) error
}

// ---------------------------------------------------------------------------
// Scheduler

// HealthCheck says how a process is judged healthy. Zero fields take the
// provider's defaults, which the root fills in before Apply.
type HealthCheck struct {
	// Path is the HTTP path probed on the process's port ("/" when empty).
	Path string
	// Grace is how long after start failures are not counted.
	Grace time.Duration
	// Interval is the time between probes.
	Interval time.Duration
	// Timeout bounds one probe.
	Timeout time.Duration
	// Healthy is the number of consecutive successes that make a target healthy.
	Healthy int
	// Unhealthy is the number of consecutive failures that make it unhealthy.
	Unhealthy int
}

// Process is one process type of a release: a command run Count times.
type Process struct {
	// Name is the process type ("web", "worker"); see ValidateAppProcess.
	Name string
	// Command overrides the image's entrypoint and command when not empty.
	Command []string
	// Count is the number of instances to keep running; zero stops the process type.
	Count int
	// CPU is in CPU units (1024 = one vCPU).
	CPU int
	// Memory is in MiB.
	Memory int
	// Port is the port the process listens on (given to it as $PORT);
	// zero means the process serves no traffic and gets no route.
	Port int
	// Health is how the process's targets are checked.
	Health HealthCheck
}

// Binding tells a scheduler where to register a process's tasks so that a
// balancer routes to them. It is produced by a Balancer (Route.Binding or
// WeightShifter.EnsureTargetSet) and carried opaquely by the root.
type Binding struct {
	// Balancer is the name of the balancer in the rack that made it.
	Balancer string
	// Kind says what Target is: BindingTargetGroup, BindingClassicELB or BindingLocal.
	Kind string
	// Target identifies the attachment point: a target group ARN, a classic
	// load balancer name, or a local target set.
	Target string
	// Port is the container port the balancer sends traffic to.
	Port int
}

// Binding kinds. Each scheduler documents which it accepts; the root
// refuses a pairing the scheduler does not accept before any change.
const (
	BindingTargetGroup = "target-group" // an ELBv2 target group ARN
	BindingClassicELB  = "classic-elb"  // a classic load balancer name
	BindingLocal       = "local"        // a target set of the local or fake balancer
)

// BindingAcceptor is implemented by schedulers that attach tasks to
// balancers; AcceptsBinding reports whether a binding kind is supported.
type BindingAcceptor interface {
	AcceptsBinding(kind string) bool
}

// Desired is the complete state a scheduler converges an app to: one
// release's processes, each attached to its bindings. Validate checks it
// against a scheduler's Limits.
type Desired struct {
	// App and Release identify what is applied.
	App     string
	Release string
	// Token identifies this apply attempt. Applying the same token again is
	// a no-op that returns the same Rollout; a new token for the same
	// release starts a new rollout (used to re-apply after a failure).
	Token string
	// Image is the pinned image every process runs.
	Image Image
	// Env is the release environment. Secret lists the names whose values
	// are secret; providers must not log or echo those values. Every
	// encoding of a Desired (fmt, JSON, gob, log/slog) redacts them; see
	// Redacted.
	Env    map[string]string
	Secret []string
	// SecretRefs maps secret names to the references a SecretKeeper
	// scheduler returned for their values. A name in Secret is in Env or
	// in SecretRefs, never both; references are not secret.
	SecretRefs map[string]string
	// Processes is the full formation; process types not listed are removed.
	Processes []Process
	// Bindings maps a process name to the bindings its tasks join
	// (more than one while traffic is split between target sets).
	Bindings map[string][]Binding
}

// String describes the desired state with secret values redacted.
func (d Desired) String() string {
	names := make([]string, 0, len(d.Processes))
	for _, p := range d.Processes {
		names = append(names, fmt.Sprintf("%s=%d", p.Name, p.Count))
	}
	return fmt.Sprintf("{App:%s Release:%s Token:%s Image:%s Env:%d vars Processes:[%s]}",
		d.App, d.Release, d.Token, d.Image.Ref(), len(d.Env), strings.Join(names, " "))
}

// Format implements fmt.Formatter so that every verb redacts env values.
func (d Desired) Format(f fmt.State, verb rune) { fmt.Fprint(f, d.String()) }

// RolloutState is the state of a rollout.
type RolloutState string

// Rollout states.
const (
	RolloutInProgress RolloutState = "in-progress"
	RolloutCompleted  RolloutState = "completed"
	RolloutFailed     RolloutState = "failed"
	RolloutCanceled   RolloutState = "canceled"
)

// Rollout is the scheduler's progress towards one Desired state.
type Rollout struct {
	// ID identifies the rollout within the app.
	ID string
	// Release and Token are those of the Desired that started it.
	Release string
	Token   string
	State   RolloutState
	// Reason explains a failed or canceled rollout (a circuit breaker, ...).
	Reason string
	// Started is when the scheduler accepted it.
	Started time.Time
}

// TaskState is the lifecycle state of a task.
type TaskState string

// Task states.
const (
	TaskPending TaskState = "pending"
	TaskRunning TaskState = "running"
	TaskStopped TaskState = "stopped"
)

// Task is one running or recently stopped instance of a process.
type Task struct {
	ID      string
	App     string
	Process string
	Release string
	State   TaskState
	// Address is host:port where the task serves, when it has a port.
	Address string
	Started time.Time
	Stopped time.Time
	// ExitCode is set when the task stopped and its exit code is known.
	ExitCode *int
	// Reason is why the task stopped ("exit status 1", "signal: killed",
	// "Essential container in task exited", ...).
	Reason string
}

// ProcessStatus is a scheduler's observation of one process type of one
// release. While a release is staged (Stager) a process type appears twice,
// serving release first.
type ProcessStatus struct {
	Name string
	// Release is the release whose tasks the process type is converging to.
	Release string
	// Desired, Running and Pending count tasks of Release only.
	Desired int
	Running int
	Pending int
}

// AppStatus is one observation of an app by a scheduler.
type AppStatus struct {
	App string
	// Release is the release the scheduler last finished rolling out
	// completely: every process type runs its desired count of that
	// release and no other. Empty before the first completed rollout.
	Release string
	// Rollouts lists in-flight and recent rollouts, newest first.
	Rollouts []Rollout
	// Processes lists process types ordered by name.
	Processes []ProcessStatus
	// Tasks lists running tasks and recently stopped ones (most recent
	// first among stopped), so failures can be explained.
	Tasks []Task
}

// Scheduler runs an app's processes.
type Scheduler interface {
	// Apply asks the scheduler to converge the app to d and returns the
	// accepted rollout; it does not wait for it to finish. Idempotent by
	// d.Token. Unknown binding kinds and invalid processes return
	// ErrInvalid before anything changes.
	Apply(ctx context.Context, d Desired) (Rollout, error)

	// Status returns one observation of the app. An app never applied (or
	// deleted) returns ErrNotFound.
	Status(ctx context.Context, app string) (AppStatus, error)

	// Delete stops every task of the app and removes its scheduler
	// resources. Deleting a missing app returns nil (idempotent).
	Delete(ctx context.Context, app string) error
}

// SecretKeeper is implemented by schedulers that keep secret values in a
// secret service of their platform and hand their tasks references to them
// (ecsscheduler: SSM Parameter Store SecureStrings a task definition names
// in its secrets). With such a scheduler the root sends each secret value
// once, to KeepSecret, and from then on stores and passes only the
// reference (Desired.SecretRefs, RunSpec.SecretRefs); the Store never holds
// the value. Delete removes every secret kept for the app.
type SecretKeeper interface {
	// KeepSecret stores value as a new copy of secret name of app and
	// returns a reference to that copy. A reference names one value for
	// good, so a release keeps its secrets when later releases change
	// them. A value the secret service cannot hold returns ErrInvalid.
	KeepSecret(ctx context.Context, app, name, value string) (ref string, err error)
}

// BatchStatus is implemented by schedulers that observe many apps per call.
type BatchStatus interface {
	// StatusMany returns the status of each app that exists, keyed by
	// app name; missing apps are absent from the map, not an error.
	StatusMany(ctx context.Context, apps []string) (map[string]AppStatus, error)
}

// Canceler is implemented by schedulers that can stop an in-flight rollout.
type Canceler interface {
	// CancelRollout stops the rollout and leaves the scheduler converging
	// back to what ran before it. Canceling a finished or unknown rollout
	// returns nil.
	CancelRollout(ctx context.Context, app, rolloutID string) error
}

// Stager is implemented by schedulers that run a second, staged release
// of an app beside the serving one: the base of blue/green and canary
// deploys, where a WeightShifter balancer splits traffic between the
// serving release's target set and the staged release's.
type Stager interface {
	// Stage runs d's processes beside the app's serving tasks, attached to
	// d.Bindings, without touching the serving tasks. Staging again
	// replaces the staged release. Idempotent by d.Token. Status reports
	// the staged tasks in AppStatus.Processes and AppStatus.Tasks under
	// their release, while AppStatus.Release stays the serving release.
	// An app that was never applied returns ErrNotFound.
	Stage(ctx context.Context, d Desired) (Rollout, error)

	// PromoteStage makes the staged tasks the app's serving tasks, without
	// restarting them, and stops the previously serving tasks (draining
	// their targets first). AppStatus.Release becomes the staged release
	// once the old tasks have stopped. With nothing staged it returns
	// ErrNotFound.
	PromoteStage(ctx context.Context, app string) error

	// DiscardStage stops the staged tasks. With nothing staged it returns nil.
	DiscardStage(ctx context.Context, app string) error
}

// RunSpec describes a one-off process.
type RunSpec struct {
	App     string
	Release string
	// Token makes RunTask idempotent: the same token returns the same task.
	Token string
	Image Image
	// Env, Secret and SecretRefs as in Desired.
	Env        map[string]string
	Secret     []string
	SecretRefs map[string]string
	// Process is the process type whose settings (cpu, memory) the task uses.
	Process Process
	// Command overrides the process's command when not empty.
	Command []string
}

// String describes the spec with secret values redacted.
func (r RunSpec) String() string {
	return fmt.Sprintf("{App:%s Release:%s Token:%s Process:%s Command:%q Env:%d vars}", r.App, r.Release, r.Token, r.Process.Name, r.Command, len(r.Env))
}

// Format implements fmt.Formatter so that every verb redacts env values.
func (r RunSpec) Format(f fmt.State, verb rune) { fmt.Fprint(f, r.String()) }

// TaskRunner is implemented by schedulers that run one-off processes.
// Their output goes to the rack's Logs under the task's ID (as the output
// of every task does, with Process and Release set); the exit code is in
// the stopped Task.
type TaskRunner interface {
	// RunTask starts a one-off task and returns it (usually pending).
	// Idempotent by spec.Token.
	RunTask(ctx context.Context, spec RunSpec) (Task, error)
	// GetTask returns the task; an unknown task returns ErrNotFound.
	GetTask(ctx context.Context, app, id string) (Task, error)
	// StopTask stops a one-off task; stopping a stopped or unknown task returns nil.
	StopTask(ctx context.Context, app, id string) error
}

// ---------------------------------------------------------------------------
// Balancer

// Protocol is a route's listener protocol.
type Protocol string

// Protocols.
const (
	HTTP  Protocol = "http"
	HTTPS Protocol = "https"
	HTTP2 Protocol = "http2" // HTTPS with HTTP/2 to clients
)

// RouteSpec describes the route of one process of an app.
type RouteSpec struct {
	App     string
	Process string
	// Port is the process's container port.
	Port     int
	Protocol Protocol
	// Host and Path restrict the route on a shared balancer (host header,
	// path prefix). Both empty means the provider's default for the app.
	Host string
	Path string
	// Certificate is the certificate (an ACM ARN on AWS) for HTTPS and HTTP2.
	Certificate string
	Health      HealthCheck
	// DeregistrationDelay is how long removed targets drain.
	DeregistrationDelay time.Duration
}

// Route is an ensured route.
type Route struct {
	// ID identifies the route in its balancer.
	ID string
	// Endpoint is where clients reach it: a URL or a DNS name.
	Endpoint string
	// Binding is the default target set the scheduler attaches tasks to.
	Binding Binding
}

// TargetState is a balancer's verdict on one target.
type TargetState string

// Target states.
const (
	TargetInitial   TargetState = "initial"
	TargetHealthy   TargetState = "healthy"
	TargetUnhealthy TargetState = "unhealthy"
	TargetDraining  TargetState = "draining"
	TargetUnused    TargetState = "unused"
)

// TargetHealth is the health of one registered target.
type TargetHealth struct {
	// Target is the address or instance/task id registered.
	Target string
	// Set is the target set it belongs to ("" for the default set).
	Set    string
	State  TargetState
	Reason string
}

// Balancer routes an endpoint to a process's targets.
type Balancer interface {
	// EnsureRoute creates the route, or finds and updates the existing one,
	// and returns it. Idempotent: the same spec returns the same Route ID
	// and never creates a duplicate resource. Invalid specs return ErrInvalid.
	EnsureRoute(ctx context.Context, spec RouteSpec) (Route, error)

	// Health returns the targets of every target set of the route ordered
	// by set then target. An unknown route returns ErrNotFound.
	Health(ctx context.Context, routeID string) ([]TargetHealth, error)

	// DeleteRoute removes the route and its target sets. Deleting a missing
	// route returns nil (idempotent).
	DeleteRoute(ctx context.Context, routeID string) error
}

// WeightShifter is implemented by balancers that split traffic between
// target sets of a route, the base of blue/green and canary deploys.
type WeightShifter interface {
	// EnsureTargetSet creates (or finds) a named additional target set of
	// the route, receiving no traffic until weighted, and returns its
	// binding. Set names follow ValidateName with MaxSetName.
	EnsureTargetSet(ctx context.Context, routeID, set string) (Binding, error)
	// SetWeights sets the traffic weights (0–100, summing to 100) across
	// the route's sets; "" names the default set. Unknown sets return
	// ErrNotFound; bad weights return ErrInvalid.
	SetWeights(ctx context.Context, routeID string, weights map[string]int) error
	// Weights returns the current weights of every set of the route.
	Weights(ctx context.Context, routeID string) (map[string]int, error)
	// DeleteTargetSet removes a set with zero weight; deleting a missing
	// set returns nil, deleting a weighted one returns ErrConflict.
	DeleteTargetSet(ctx context.Context, routeID, set string) error
}

// ---------------------------------------------------------------------------
// Logs

// LogEntry is one log line. Backends may keep times at millisecond
// precision.
type LogEntry struct {
	// ID identifies the entry uniquely within its app; readers dedupe on it.
	// Write assigns one when empty.
	ID   string
	Time time.Time
	App  string
	// Stream is the source of the line: a task ID, or StreamPlatform for
	// the platform's own events.
	Stream  string
	Process string
	Release string
	Message string
}

// StreamPlatform is the stream (and process) name of the platform's own
// events — deploy steps, failures, rollbacks — in an app's logs.
const StreamPlatform = "convox"

// LogQuery selects log entries of one app. Zero fields do not filter.
type LogQuery struct {
	App string
	// Start and End bound entry times: Start inclusive, End exclusive.
	Start time.Time
	End   time.Time
	// Filter keeps entries whose message contains it (case-sensitive).
	Filter string
	// Process, Release and Stream keep entries with exactly that field.
	Process string
	Release string
	Stream  string
	// Limit bounds the entries of one page; zero means the provider's default.
	Limit int
}

// Match reports whether q selects e: e belongs to q.App, its time is in
// [Start, End) where they are set, its message contains Filter, and its
// Process, Release and Stream equal those of q that are set. Limit plays
// no part. Providers apply it to every entry they return, whatever their
// backend filtered.
func (q LogQuery) Match(e LogEntry) bool {
	switch {
	case e.App != q.App:
	case !q.Start.IsZero() && e.Time.Before(q.Start):
	case !q.End.IsZero() && !e.Time.Before(q.End):
	case q.Filter != "" && !strings.Contains(e.Message, q.Filter):
	case q.Process != "" && e.Process != q.Process:
	case q.Release != "" && e.Release != q.Release:
	case q.Stream != "" && e.Stream != q.Stream:
	default:
		return true
	}
	return false
}

// Fingerprint identifies q, Limit aside, for the page tokens of a Read:
// equal queries have equal fingerprints, so that a provider can refuse a
// token made for another query. It is 16 hexadecimal digits.
func (q LogQuery) Fingerprint() string {
	q.Limit = 0
	raw, _ := json.Marshal(q)
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:8])
}

// LogPage is one page of a read.
type LogPage struct {
	// Entries are ordered by time, then ID.
	Entries []LogEntry
	// Next continues the read; empty means no more entries exist now.
	Next string
}

// Logs stores and reads app logs.
type Logs interface {
	// Write appends entries, creating the app's log resources on first use.
	// Entries must have App and Stream set (ErrInvalid otherwise); an empty
	// ID is assigned. Entries may arrive in any order; reads return them in
	// time order.
	Write(ctx context.Context, entries []LogEntry) error

	// Read returns one page of the entries matching q, continuing after
	// token ("" starts at the beginning). A token from another query returns
	// ErrInvalid. An app with no logs returns an empty page, not an error.
	Read(ctx context.Context, q LogQuery, token string) (LogPage, error)

	// Delete removes the app's logs. Deleting missing logs returns nil.
	Delete(ctx context.Context, app string) error
}

// LogTailer is implemented by log providers that push new entries.
type LogTailer interface {
	// Tail yields entries matching q (Start ignored: from now) as they
	// arrive until ctx ends or the loop breaks. A terminal error is yielded
	// once, last.
	Tail(ctx context.Context, q LogQuery) iter.Seq2[LogEntry, error]
}

// ---------------------------------------------------------------------------
// Store

// AnyVersion passed as ifVersion makes Put and Delete unconditional.
const AnyVersion int64 = -1

// MaxKeyLen is the longest key a Store must accept.
const MaxKeyLen = 1024

// ValidateKey checks a store key: 1 to MaxKeyLen bytes of valid UTF-8
// without control characters. The error matches ErrInvalid.
func ValidateKey(key string) error {
	if key == "" || len(key) > MaxKeyLen {
		return Invalidf("store key must be 1 to %d bytes, got %d", MaxKeyLen, len(key))
	}
	if !utf8.ValidString(key) {
		return Invalidf("store key %q is not valid UTF-8", key)
	}
	for _, r := range key {
		if r < 0x20 || r == 0x7f {
			return Invalidf("store key %q contains a control character", key)
		}
	}
	return nil
}

// Doc is a versioned document.
type Doc struct {
	Key   string
	Value []byte
	// Version is positive; every successful Put of a key returns a version
	// greater than the previous one (not necessarily the next integer, and
	// never one the key had before it was deleted).
	Version int64
}

// ListOptions page a Store listing.
type ListOptions struct {
	// Reverse lists in descending key order.
	Reverse bool
	// Limit bounds the documents of one page; zero means the provider's default.
	Limit int
	// Token continues a previous listing of the same prefix and order.
	Token string
}

// DocPage is one page of a listing.
type DocPage struct {
	Docs []Doc
	// Next continues the listing; empty means it is complete.
	Next string
}

// Store holds versioned documents with compare-and-swap.
type Store interface {
	// Get returns the document; a missing key returns ErrNotFound.
	Get(ctx context.Context, key string) (Doc, error)

	// Put writes value under key if the stored version equals ifVersion
	// and returns the new version. ifVersion 0 creates only: an existing
	// key returns ErrConflict. A positive ifVersion that differs from the
	// stored one, or names a missing key, returns ErrConflict. AnyVersion
	// writes unconditionally. Invalid keys return ErrInvalid.
	Put(ctx context.Context, key string, value []byte, ifVersion int64) (int64, error)

	// Delete removes the document if its version equals ifVersion
	// (ErrConflict otherwise; ErrNotFound for a missing key). With
	// AnyVersion it is unconditional and deleting a missing key returns nil.
	// ifVersion 0 returns ErrInvalid.
	Delete(ctx context.Context, key string, ifVersion int64) error

	// List returns one page of the documents whose keys start with prefix,
	// in ascending byte order of keys (descending with Reverse). Paging
	// through a listing yields every key that existed throughout it exactly
	// once. A token from another listing returns ErrInvalid.
	List(ctx context.Context, prefix string, opts ListOptions) (DocPage, error)
}

// ---------------------------------------------------------------------------
// Notifier

// NotificationKind says what happened.
type NotificationKind string

// Notification kinds.
const (
	NotifyDeployStarted   NotificationKind = "deploy-started"
	NotifyDeploySucceeded NotificationKind = "deploy-succeeded"
	NotifyDeployFailed    NotificationKind = "deploy-failed"
	NotifyRollback        NotificationKind = "rollback"
)

// Notification is a deploy outcome sent to people or systems. It never
// holds secret values.
type Notification struct {
	Kind    NotificationKind
	App     string
	Release string
	// Previous is the release that was active before.
	Previous string
	// Summary is a one-line human description of the change.
	Summary string
	// Reason explains a failure.
	Reason string
	// RolledBack is true when a failed deploy was compensated.
	RolledBack bool
	Time       time.Time
}

// Notifier delivers notifications (Slack, webhooks, GitHub statuses).
type Notifier interface {
	// Notify delivers n once. The root bounds it with a timeout and never
	// fails a deploy because a notifier failed.
	Notify(ctx context.Context, n Notification) error
}
