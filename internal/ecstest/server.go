// Package ecstest is an in-process Amazon ECS endpoint for tests: it speaks
// the real ECS wire protocol (AWS JSON 1.1, X-Amz-Target
// AmazonEC2ContainerServiceV20141113.<Operation>) so that providers are
// exercised through the real aws-sdk-go-v2 ECS client, and it simulates
// what an emulator without a scheduler cannot: tasks that go PENDING →
// RUNNING → STOPPED, services with deployments, rollout states and a
// deployment circuit breaker that rolls back, and one-off tasks that exit
// with a code.
//
// Time does not pass by itself. The simulation advances one step at a time,
// when the test calls Step or Settle, or on every DescribeServices and
// DescribeTasks request when Options.AutoStep is set, so every run of a
// test sees the same states in the same order. Timestamps come from a
// clock that starts at a fixed instant and moves one second per step.
//
// # Behaviour of tasks
//
// A task started by a service runs until stopped, and a one-off task (from
// RunTask) runs for one step and exits 0, unless scripted: the container
// environment variable ECSTEST_EXIT_CODE (in the task definition or in the
// RunTask overrides) makes the container exit with that code after
// ECSTEST_RUN_STEPS running steps (default 1); CrashImage does the same for
// every task of an image reference or digest. A service whose tasks keep
// exiting is a crash loop: each exit counts as a failed task of its
// deployment, and when the failures reach the circuit breaker's threshold
// (half the desired count, at least 3, at most 200) the deployment is
// FAILED and, with rollback enabled, replaced by a deployment of the last
// completed task definition. CrashImageNow makes the tasks already running
// of an image exit too, at their next step.
//
// DeleteService of a service scaled to zero whose tasks still run drains
// it, as ECS does: the service is DRAINING (left out of ListServices, still
// answered by DescribeServices, its name not reusable by CreateService),
// each RUNNING task becomes DEACTIVATING (desired status STOPPED) at the
// next step while its targets drain and STOPPED at the one after, a
// PENDING one stops at once, and then the service is gone (MISSING). With
// force, DeleteService stops the tasks at once.
//
// # Operations
//
// CreateCluster, DescribeClusters, RegisterTaskDefinition,
// DescribeTaskDefinition, ListTaskDefinitions, DeregisterTaskDefinition,
// CreateService, UpdateService, DescribeServices (at most 10 services per
// call, InvalidParameterException otherwise), DeleteService, ListServices
// (10 per page unless maxResults, at most 100), ListTasks, DescribeTasks
// (at most 100), RunTask and CreateService (idempotent by clientToken),
// StopTask, TagResource,
// UntagResource and ListTagsForResource. Other operations return
// UnknownOperationException.
//
// Example:
//
//	srv := ecstest.New(t, nil)
//	client := ecs.NewFromConfig(awstest.ConfigFor(srv.URL))
//	// ... create a service through client ...
//	srv.Settle() // advance until nothing changes
package ecstest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
)

// TargetPrefix is the X-Amz-Target prefix of the ECS API.
const TargetPrefix = "AmazonEC2ContainerServiceV20141113."

// Account and Region appear in every ARN the server makes.
const (
	Account = "000000000000"
	Region  = "us-east-1"
)

// Options configure a Server. The zero value is ready to use.
type Options struct {
	// AutoStep advances the simulation one step before answering each
	// DescribeServices and DescribeTasks request, so that a client that
	// polls sees progress without the test calling Step.
	AutoStep bool
}

// Server is an in-process ECS endpoint. Its methods are safe for
// concurrent use.
type Server struct {
	// URL is the endpoint to use as the ECS client's BaseEndpoint.
	URL string

	hs   *httptest.Server
	opts Options

	mu       sync.Mutex
	steps    int
	seq      int
	calls    map[string]int
	clusters map[string]*cluster
	families map[string][]*types.TaskDefinition
	tags     map[string][]types.Tag
	crashes  map[string]int32
}

// New starts a server that the test's cleanup stops. opts may be nil.
func New(t testing.TB, opts *Options) *Server {
	t.Helper()
	s := NewServer(opts)
	t.Cleanup(s.Close)
	return s
}

// NewServer starts a server; Close stops it. opts may be nil.
func NewServer(opts *Options) *Server {
	s := &Server{
		calls:    map[string]int{},
		clusters: map[string]*cluster{},
		families: map[string][]*types.TaskDefinition{},
		tags:     map[string][]types.Tag{},
		crashes:  map[string]int32{},
	}
	if opts != nil {
		s.opts = *opts
	}
	s.hs = httptest.NewServer(http.HandlerFunc(s.serveHTTP))
	s.URL = s.hs.URL
	return s
}

// Close stops the server.
func (s *Server) Close() { s.hs.Close() }

// Step advances the simulation by one step and reports whether anything
// changed.
func (s *Server) Step() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.step()
}

// Settle advances the simulation until a step changes nothing (at most
// 1000 steps, which only a service that never settles, such as a crash
// loop without a circuit breaker, reaches) and returns the steps taken.
func (s *Server) Settle() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := 1; i <= 1000; i++ {
		if !s.step() {
			return i
		}
	}
	return 1000
}

// CrashImage makes every container whose image reference or image digest
// contains ref exit with exitCode after one running step.
func (s *Server) CrashImage(ref string, exitCode int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.crashes[ref] = exitCode
}

// CrashImageNow is CrashImage for the tasks already started too: every
// live task whose container image contains ref exits with exitCode at its
// next running step, and every later one as CrashImage says. It stands for
// a release that turns bad while it serves.
func (s *Server) CrashImageNow(ref string, exitCode int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.crashes[ref] = exitCode
	for _, c := range s.clusters {
		for _, t := range c.tasks {
			if !live(t) || !slices.ContainsFunc(t.t.Containers, func(ct types.Container) bool { return strings.Contains(aws.ToString(ct.Image), ref) }) {
				continue
			}
			t.exit = aws.Int32(exitCode)
			t.runSteps = min(t.runSteps, t.ran+1)
		}
	}
}

// Calls returns how many requests of an operation the server answered.
func (s *Server) Calls(op string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[op]
}

// apiError is an error the server returns in the AWS JSON error shape.
type apiError struct {
	Code    string
	Message string
}

func (e *apiError) Error() string { return e.Code + ": " + e.Message }

func clientErr(format string, args ...any) error {
	return &apiError{"ClientException", fmt.Sprintf(format, args...)}
}

func invalidErr(format string, args ...any) error {
	return &apiError{"InvalidParameterException", fmt.Sprintf(format, args...)}
}

type handler func(s *Server, body []byte) (any, error)

var handlers = map[string]handler{
	"CreateCluster":            (*Server).createCluster,
	"DescribeClusters":         (*Server).describeClusters,
	"RegisterTaskDefinition":   (*Server).registerTaskDefinition,
	"DescribeTaskDefinition":   (*Server).describeTaskDefinition,
	"ListTaskDefinitions":      (*Server).listTaskDefinitions,
	"DeregisterTaskDefinition": (*Server).deregisterTaskDefinition,
	"CreateService":            (*Server).createService,
	"UpdateService":            (*Server).updateService,
	"DescribeServices":         (*Server).describeServices,
	"DeleteService":            (*Server).deleteService,
	"ListServices":             (*Server).listServices,
	"ListTasks":                (*Server).listTasks,
	"DescribeTasks":            (*Server).describeTasks,
	"RunTask":                  (*Server).runTask,
	"StopTask":                 (*Server).stopTask,
	"TagResource":              (*Server).tagResource,
	"UntagResource":            (*Server).untagResource,
	"ListTagsForResource":      (*Server).listTagsForResource,
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	target := r.Header.Get("X-Amz-Target")
	op, ok := strings.CutPrefix(target, TargetPrefix)
	h := handlers[op]
	if r.Method != http.MethodPost || !ok || h == nil {
		writeErr(w, &apiError{"UnknownOperationException", fmt.Sprintf("operation %q is not supported", target)})
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		writeErr(w, &apiError{"SerializationException", err.Error()})
		return
	}
	s.mu.Lock()
	s.calls[op]++
	if s.opts.AutoStep && (op == "DescribeServices" || op == "DescribeTasks") {
		s.step()
	}
	out, err := h(s, body)
	s.mu.Unlock()
	if err != nil {
		writeErr(w, err)
		return
	}
	b, err := encode(out)
	if err != nil {
		writeErr(w, &apiError{"ServerException", err.Error()})
		return
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Write(b)
}

func writeErr(w http.ResponseWriter, err error) {
	ae, ok := err.(*apiError)
	if !ok {
		ae = &apiError{"ServerException", err.Error()}
	}
	status := http.StatusBadRequest
	if ae.Code == "ServerException" {
		status = http.StatusInternalServerError
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-Errortype", ae.Code)
	w.WriteHeader(status)
	b, _ := json.Marshal(map[string]string{"__type": ae.Code, "message": ae.Message})
	w.Write(b)
}

// decode reads a request body into an SDK input struct: encoding/json
// matches the lowerCamel wire names to the SDK's field names.
func decode[T any](body []byte) (*T, error) {
	in := new(T)
	if len(body) == 0 {
		return in, nil
	}
	if err := json.Unmarshal(body, in); err != nil {
		return nil, &apiError{"SerializationException", err.Error()}
	}
	return in, nil
}

func (s *Server) now() time.Time {
	return time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(s.steps) * time.Second)
}

func (s *Server) nowp() *time.Time { t := s.now(); return &t }

func arn(kind, name string) string {
	return fmt.Sprintf("arn:aws:ecs:%s:%s:%s/%s", Region, Account, kind, name)
}

// lastSegment returns the name or ID at the end of an ARN (or the value itself).
func lastSegment(s string) string {
	if i := strings.LastIndexByte(s, '/'); i >= 0 {
		return s[i+1:]
	}
	return s
}
