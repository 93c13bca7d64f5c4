// Package awstest is the shared harness of the AWS provider tests.
//
// Emulator tests run against two independent AWS emulators on the loopback
// interface: kumo, which scripts/kumo starts (its endpoint arrives in
// CONVOX_TEST_AWS_ENDPOINT), and moto, which scripts/moto starts
// (CONVOX_TEST_MOTO_ENDPOINT). Emulators runs a test once per emulator, as
// subtests named for them; Endpoint and Config give kumo alone. When a
// variable is unset its tests skip with a message that says how to run
// them, so plain `go test ./...` works offline. Wire-level test servers of
// the repository (packages ecstest, elbtest, cwlogstest) run in-process and
// need no emulator: ConfigFor points a configuration at any endpoint.
//
// Where an emulator departs from AWS, the test adapts on that emulator
// only (switching on Emulator.Backend), with the AWS documentation it
// departs from quoted in a comment; provider code never special-cases an
// emulator.
//
// A Counter counts API calls by operation name through a client's
// middleware stack, so that tests measure calls instead of assuming them:
//
//	func TestStatusCost(t *testing.T) {
//		cfg := awstest.Config(t) // skips when the emulator is not running
//		calls := awstest.NewCounter()
//		cfg.APIOptions = append(cfg.APIOptions, calls.AddTo)
//		client := ecr.NewFromConfig(cfg)
//		// ... exercise a provider built on client ...
//		if got := calls.Count("DescribeRepositories"); got != 1 {
//			t.Errorf("DescribeRepositories calls = %d, want 1", got)
//		}
//	}
package awstest

import (
	"context"
	"crypto/rand"
	"fmt"
	"maps"
	"os"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/smithy-go/middleware"
)

// EndpointEnv names the environment variable holding the emulator's
// endpoint ("http://127.0.0.1:4566"). scripts/test sets it.
const EndpointEnv = "CONVOX_TEST_AWS_ENDPOINT"

// Region is the region every test configuration uses.
const Region = "us-east-1"

// Endpoint returns the emulator's endpoint, or skips the test with a
// message saying how to start the emulator when EndpointEnv is unset.
func Endpoint(t testing.TB) string {
	t.Helper()
	e := os.Getenv(EndpointEnv)
	if e == "" {
		t.Skipf("%s is unset: this test needs the AWS emulator; run scripts/test, or eval \"$(scripts/kumo start)\" first", EndpointEnv)
	}
	return e
}

// Config returns a configuration for the emulator (see Endpoint; the test
// skips when it is not running).
func Config(t testing.TB) aws.Config {
	t.Helper()
	return ConfigFor(Endpoint(t))
}

// ConfigFor returns a configuration whose clients all send to endpoint
// (their BaseEndpoint), in Region, with static dummy credentials and no
// shared configuration files read. A client option can still route one
// client elsewhere:
//
//	ecs.NewFromConfig(cfg, func(o *ecs.Options) { o.BaseEndpoint = aws.String(srv.URL) })
func ConfigFor(endpoint string) aws.Config {
	return aws.Config{
		Region:           Region,
		Credentials:      credentials.NewStaticCredentialsProvider("test", "test", ""),
		BaseEndpoint:     aws.String(endpoint),
		RetryMaxAttempts: 2,
	}
}

// Name returns a name unique to this run, safe for apps, repositories and
// AWS resources: prefix, a hyphen and six random lowercase characters.
// The prefix must be a valid app name of at most 13 characters, so the
// result is at most providers.MaxAppName long.
func Name(t testing.TB, prefix string) string {
	t.Helper()
	if len(prefix) > 13 {
		t.Fatalf("awstest.Name: prefix %q is longer than 13 characters", prefix)
	}
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("awstest.Name: %v", err)
	}
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return prefix + "-" + string(b)
}

// Counter counts API operations by name. One operation call counts once,
// however often the SDK's retryer sends it. It is safe for concurrent use.
type Counter struct {
	mu     sync.Mutex
	counts map[string]int
}

// NewCounter returns an empty Counter.
func NewCounter() *Counter { return &Counter{counts: map[string]int{}} }

// AddTo installs the counter in a middleware stack. Its signature fits
// aws.Config.APIOptions and every client's Options.APIOptions:
//
//	cfg.APIOptions = append(cfg.APIOptions, counter.AddTo)
func (c *Counter) AddTo(stack *middleware.Stack) error {
	return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("awstest.Counter",
		func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			op := middleware.GetOperationName(ctx)
			c.mu.Lock()
			c.counts[op]++
			c.mu.Unlock()
			return next.HandleInitialize(ctx, in)
		}), middleware.Before)
}

// Count returns how many times operation op was called.
func (c *Counter) Count(op string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.counts[op]
}

// Counts returns a copy of every count, keyed by operation name.
func (c *Counter) Counts() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.counts)
}

// Reset sets every count to zero.
func (c *Counter) Reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.counts)
}

// String lists the counts, for failure messages.
func (c *Counter) String() string {
	return fmt.Sprint(c.Counts())
}

// MotoEnv names the environment variable holding the endpoint of moto
// ("http://127.0.0.1:5000"), the second emulator. scripts/test sets it.
const MotoEnv = "CONVOX_TEST_MOTO_ENDPOINT"

// MotoIAMEnv names the environment variable holding the endpoint of a
// second moto process reserved for IAM enforcement tests: a test switches
// enforcement on there (see EnforceIAM), which would deny every other
// test's unsigned calls on a shared process. scripts/test sets it.
const MotoIAMEnv = "CONVOX_TEST_MOTO_IAM_ENDPOINT"

// Backend names an AWS emulator.
type Backend string

// The emulators the tests run on.
const (
	// Kumo is sivchari/kumo (scripts/kumo).
	Kumo Backend = "kumo"
	// Moto is moto_server (scripts/moto).
	Moto Backend = "moto"
)

// env returns the variable holding b's endpoint.
func (b Backend) env() string {
	if b == Moto {
		return MotoEnv
	}
	return EndpointEnv
}

// Emulator is one running emulator.
type Emulator struct {
	// Backend says which emulator this is.
	Backend Backend
	// Endpoint is its base URL.
	Endpoint string
}

// Config returns a configuration for the emulator (see ConfigFor).
func (e Emulator) Config() aws.Config { return ConfigFor(e.Endpoint) }

// EmulatorOf returns the running emulator b, or skips the test with a
// message saying how to start it when its endpoint variable is unset.
func EmulatorOf(t testing.TB, b Backend) Emulator {
	t.Helper()
	env := b.env()
	e := os.Getenv(env)
	if e == "" {
		t.Skipf("%s is unset: this test needs the AWS emulator %s; run scripts/test, or eval \"$(scripts/%s start)\" first", env, b, b)
	}
	return Emulator{Backend: b, Endpoint: e}
}

// Emulators runs f once per emulator, kumo then moto, each as a subtest
// named for its backend that skips when that emulator is not running.
// The subtests run one after the other.
func Emulators(t *testing.T, f func(t *testing.T, e Emulator)) {
	t.Helper()
	for _, b := range []Backend{Kumo, Moto} {
		t.Run(string(b), func(t *testing.T) {
			f(t, EmulatorOf(t, b))
		})
	}
}
