package cfnstack_test

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/google/go-cmp/cmp"

	"github.com/convox-go/convox/internal/awstest"
	"github.com/convox-go/convox/providers"
)

// moto applies every stack update at once and never fails or rolls one
// back, and it has no CancelUpdateStack or ContinueUpdateRollback. An
// awsBehaviour stands in front of it for one stack: it takes the update
// it is armed for (moto never sees it, so moto's resources stay as they
// were, as they are after an AWS rollback) and answers DescribeStacks and
// DescribeStackEvents with the statuses and events AWS produces for the
// behaviour it is named for, one phase per DescribeStacks call.
type awsBehaviour struct {
	name string
	// phases run after the armed UpdateStack; a phase marked wait stays
	// until the call that ends it (CancelUpdateStack, ContinueUpdateRollback).
	phases []phase
	// onCancel and onContinue are the phases after those calls.
	onCancel, onContinue []phase
}

// phase is one stack status and the events that lead to it.
type phase struct {
	status string
	wait   bool
	events []event
}

// event is one stack event; resource "" is the stack itself.
type event struct {
	resource, status, reason string
}

const breakerReason = `Resource handler returned message: "Error occurred during operation 'ECS Deployment Circuit Breaker was triggered'." (HandlerErrorCode: GeneralServiceException)`

var (
	updateStarts = phase{status: "UPDATE_IN_PROGRESS", events: []event{{"", "UPDATE_IN_PROGRESS", "User Initiated"}, {"ServiceOfweb", "UPDATE_IN_PROGRESS", ""}}}
	breakerFails = phase{status: "UPDATE_ROLLBACK_IN_PROGRESS", events: []event{
		{"ServiceOfweb", "UPDATE_FAILED", breakerReason},
		{"", "UPDATE_ROLLBACK_IN_PROGRESS", "The following resource(s) failed to update: [ServiceOfweb]."},
	}}
	rolledBack = phase{status: "UPDATE_ROLLBACK_COMPLETE", events: []event{{"ServiceOfweb", "UPDATE_COMPLETE", ""}, {"", "UPDATE_ROLLBACK_COMPLETE", ""}}}
)

// The behaviours, each named for what AWS does.
var (
	// A service whose new tasks keep failing trips the ECS deployment
	// circuit breaker; CloudFormation marks the service UPDATE_FAILED and
	// rolls the whole stack back to its previous template.
	circuitBreakerRollsBack = awsBehaviour{name: "circuit breaker fails the update and CloudFormation rolls it back",
		phases: []phase{updateStarts, breakerFails, rolledBack}}
	// The rollback itself fails (the previous service cannot stabilize
	// either): the stack stops in UPDATE_ROLLBACK_FAILED until
	// ContinueUpdateRollback, skipping the failed resources, completes it.
	rollbackFails = awsBehaviour{name: "the rollback fails and waits for ContinueUpdateRollback",
		phases: []phase{updateStarts, breakerFails, {status: "UPDATE_ROLLBACK_FAILED", wait: true, events: []event{
			{"ServiceOfweb", "UPDATE_FAILED", "Service arn:aws:ecs:us-east-1:123456789012:service/web did not stabilize."},
			{"", "UPDATE_ROLLBACK_FAILED", "The following resource(s) failed to update: [ServiceOfweb]."},
		}}},
		onContinue: []phase{{status: "UPDATE_ROLLBACK_IN_PROGRESS", events: []event{{"", "UPDATE_ROLLBACK_IN_PROGRESS", "User Initiated"}, {"ServiceOfweb", "UPDATE_COMPLETE", "Resource skipped during rollback"}}},
			{status: "UPDATE_ROLLBACK_COMPLETE", events: []event{{"", "UPDATE_ROLLBACK_COMPLETE", ""}}}},
	}
	// CancelUpdateStack stops an update in flight: CloudFormation cancels
	// the resource updates and rolls the stack back.
	cancelRollsBack = awsBehaviour{name: "CancelUpdateStack cancels the update and CloudFormation rolls it back",
		phases: []phase{{status: updateStarts.status, wait: true, events: updateStarts.events}},
		onCancel: []phase{{status: "UPDATE_ROLLBACK_IN_PROGRESS", events: []event{
			{"ServiceOfweb", "UPDATE_FAILED", "Resource update cancelled"},
			{"", "UPDATE_ROLLBACK_IN_PROGRESS", "Stack update cancelled"},
		}}, rolledBack},
	}
)

// rewriter is the transport in front of moto playing one awsBehaviour for
// one stack.
type rewriter struct {
	next  http.RoundTripper
	stack string
	b     awsBehaviour

	mu      sync.Mutex
	armed   bool
	active  []phase // phases still to play; the first is the current one
	log     []event // events played so far, oldest first
	crt     string
	entered bool
	// taken is set once the armed update was taken, at epoch: the
	// played events are stamped from then on, a millisecond apart.
	taken bool
	epoch time.Time
	// calls records the intercepted calls with their parameters.
	calls []string
}

func (w *rewriter) RoundTrip(req *http.Request) (*http.Response, error) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		return nil, err
	}
	req.Body = io.NopCloser(bytes.NewReader(body))
	form, _ := url.ParseQuery(string(body))
	action, stack := form.Get("Action"), form.Get("StackName")
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.armed || (stack != w.stack && !strings.Contains(stack, ":stack/"+w.stack+"/")) {
		return w.next.RoundTrip(req)
	}
	switch action {
	case "UpdateStack":
		if w.taken {
			// A later update (a compensation) reaches moto, which
			// applies it: the stack is moto's again.
			w.active, w.log = nil, nil
			return w.next.RoundTrip(req)
		}
		w.taken, w.epoch = true, time.Now().UTC().Truncate(time.Millisecond)
		w.crt = form.Get("ClientRequestToken")
		w.active, w.entered = slices.Clone(w.b.phases), false
		w.calls = append(w.calls, "UpdateStack")
		return reply(req, `<UpdateStackResponse><UpdateStackResult><StackId>`+w.stack+`</StackId></UpdateStackResult></UpdateStackResponse>`), nil
	case "CancelUpdateStack":
		w.calls = append(w.calls, "CancelUpdateStack")
		w.active, w.entered = slices.Clone(w.b.onCancel), false
		return reply(req, `<CancelUpdateStackResponse><ResponseMetadata><RequestId>1</RequestId></ResponseMetadata></CancelUpdateStackResponse>`), nil
	case "ContinueUpdateRollback":
		w.calls = append(w.calls, "ContinueUpdateRollback skip="+form.Get("ResourcesToSkip.member.1"))
		w.active, w.entered = slices.Clone(w.b.onContinue), false
		return reply(req, `<ContinueUpdateRollbackResponse><ContinueUpdateRollbackResult/></ContinueUpdateRollbackResponse>`), nil
	case "DescribeStacks":
		if len(w.active) == 0 {
			return w.next.RoundTrip(req)
		}
		if w.entered && !w.active[0].wait && len(w.active) > 1 {
			w.active = w.active[1:]
			w.entered = false
		}
		if !w.entered {
			w.log = append(w.log, w.active[0].events...)
			w.entered = true
		}
		resp, err := w.next.RoundTrip(req)
		if err != nil {
			return nil, err
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return nil, err
		}
		b = statusElem.ReplaceAll(b, []byte("<StackStatus>"+w.active[0].status+"</StackStatus>"))
		resp.Body = io.NopCloser(bytes.NewReader(b))
		resp.ContentLength = int64(len(b))
		resp.Header.Del("Content-Length")
		return resp, nil
	case "DescribeStackEvents":
		if w.log == nil {
			return w.next.RoundTrip(req)
		}
		return reply(req, w.eventsXML()), nil
	}
	return w.next.RoundTrip(req)
}

var statusElem = regexp.MustCompile(`<StackStatus>[A-Z_]+</StackStatus>`)

func reply(req *http.Request, body string) *http.Response {
	return &http.Response{StatusCode: 200, Status: "200 OK", Header: http.Header{"Content-Type": {"text/xml"}},
		Body: io.NopCloser(strings.NewReader(body)), ContentLength: int64(len(body)), Request: req}
}

// eventsXML renders the played events, newest first, as AWS's
// DescribeStackEvents answer, each carrying the update's token.
func (w *rewriter) eventsXML() string {
	type member struct {
		StackId              string
		EventId              string
		StackName            string
		LogicalResourceId    string
		ResourceType         string
		Timestamp            string
		ResourceStatus       string
		ResourceStatusReason string `xml:",omitempty"`
		ClientRequestToken   string `xml:",omitempty"`
	}
	var out struct {
		XMLName xml.Name `xml:"DescribeStackEventsResponse"`
		Members []member `xml:"DescribeStackEventsResult>StackEvents>member"`
	}
	for i, e := range w.log {
		m := member{StackId: w.stack, EventId: fmt.Sprint(i), StackName: w.stack, LogicalResourceId: e.resource, ResourceType: "AWS::ECS::Service",
			Timestamp: w.eventTime(i).Format("2006-01-02T15:04:05.000Z"), ResourceStatus: e.status, ResourceStatusReason: e.reason, ClientRequestToken: w.crt}
		if e.resource == "" {
			m.LogicalResourceId, m.ResourceType = w.stack, "AWS::CloudFormation::Stack"
		}
		out.Members = append(out.Members, m)
	}
	slices.Reverse(out.Members)
	b, _ := xml.Marshal(out)
	return string(b)
}

// eventTime is the time of the i-th played event.
func (w *rewriter) eventTime(i int) time.Time {
	return w.epoch.Add(time.Duration(i) * time.Millisecond)
}

// observed is what one Status call says, reduced to what the cases check.
type observed struct {
	Release string
	Rollout providers.Rollout // the newest
}

func TestAWSRollbacksAreReportedTruthfully(t *testing.T) {
	for _, tc := range []struct {
		b awsBehaviour
		// act runs while the rewriter plays, between observations.
		act  func(t *testing.T, r *rack, app string, ro providers.Rollout, w *rewriter)
		want []observed
		// calls are the calls the rewriter intercepted.
		calls []string
	}{
		{
			b: circuitBreakerRollsBack,
			want: []observed{
				{Release: "R1", Rollout: providers.Rollout{Release: "R2", Token: "t2", State: providers.RolloutInProgress}},
				{Release: "R1", Rollout: providers.Rollout{Release: "R2", Token: "t2", State: providers.RolloutFailed,
					Reason: "CloudFormation UPDATE_ROLLBACK_IN_PROGRESS: ServiceOfweb: " + breakerReason}},
				{Release: "R1", Rollout: providers.Rollout{Release: "R2", Token: "t2", State: providers.RolloutFailed,
					Reason: "CloudFormation UPDATE_ROLLBACK_COMPLETE: ServiceOfweb: " + breakerReason}},
			},
			calls: []string{"UpdateStack"},
		},
		{
			b: rollbackFails,
			act: func(t *testing.T, r *rack, app string, _ providers.Rollout, w *rewriter) {
				w.mu.Lock()
				failed := len(w.active) > 0 && w.active[0].status == "UPDATE_ROLLBACK_FAILED" && w.entered
				w.mu.Unlock()
				if !failed {
					return
				}
				if _, err := r.stack.Apply(t.Context(), release(app, "R3", "t3", imageV2, nil, 1, 1, providers.Binding{})); !errors.Is(err, providers.ErrConflict) {
					t.Errorf("Apply during UPDATE_ROLLBACK_FAILED = %v, want ErrConflict", err)
				}
				if err := r.stack.ContinueUpdateRollback(t.Context(), app, []string{"ServiceOfweb"}); err != nil {
					t.Errorf("ContinueUpdateRollback: %v", err)
				}
			},
			want: []observed{
				{Release: "R1", Rollout: providers.Rollout{Release: "R2", Token: "t2", State: providers.RolloutInProgress}},
				{Release: "R1", Rollout: providers.Rollout{Release: "R2", Token: "t2", State: providers.RolloutFailed,
					Reason: "CloudFormation UPDATE_ROLLBACK_IN_PROGRESS: ServiceOfweb: " + breakerReason}},
				{Release: "", Rollout: providers.Rollout{Release: "R2", Token: "t2", State: providers.RolloutFailed,
					Reason: "CloudFormation UPDATE_ROLLBACK_FAILED: ServiceOfweb: " + breakerReason + "; resources to skip with ContinueUpdateRollback: ServiceOfweb"}},
				{Release: "R1", Rollout: providers.Rollout{Release: "R2", Token: "t2", State: providers.RolloutFailed,
					Reason: "CloudFormation UPDATE_ROLLBACK_IN_PROGRESS: ServiceOfweb: " + breakerReason}},
				{Release: "R1", Rollout: providers.Rollout{Release: "R2", Token: "t2", State: providers.RolloutFailed,
					Reason: "CloudFormation UPDATE_ROLLBACK_COMPLETE: ServiceOfweb: " + breakerReason}},
			},
			calls: []string{"UpdateStack", "ContinueUpdateRollback skip=ServiceOfweb"},
		},
		{
			b: cancelRollsBack,
			act: func(t *testing.T, r *rack, app string, ro providers.Rollout, w *rewriter) {
				w.mu.Lock()
				inFlight := len(w.active) > 0 && w.active[0].wait && w.entered
				w.mu.Unlock()
				if !inFlight {
					return
				}
				// A retried Apply of the token in flight starts nothing.
				again, err := r.stack.Apply(t.Context(), release(app, "R2", "t2", imageV2, nil, 1, 1, providers.Binding{}))
				if err != nil || again.ID != ro.ID {
					t.Errorf("Apply of the token in flight = %+v, %v, want rollout %s", again, err, ro.ID)
				}
				if err := r.stack.CancelRollout(t.Context(), app, "another"); err != nil {
					t.Errorf("CancelRollout of an unknown rollout: %v", err)
				}
				if err := r.stack.CancelRollout(t.Context(), app, ro.ID); err != nil {
					t.Errorf("CancelRollout: %v", err)
				}
			},
			want: []observed{
				{Release: "R1", Rollout: providers.Rollout{Release: "R2", Token: "t2", State: providers.RolloutInProgress}},
				{Release: "R1", Rollout: providers.Rollout{Release: "R2", Token: "t2", State: providers.RolloutCanceled,
					Reason: "the stack update was canceled (CancelUpdateStack) and rolled back"}},
				{Release: "R1", Rollout: providers.Rollout{Release: "R2", Token: "t2", State: providers.RolloutCanceled,
					Reason: "the stack update was canceled (CancelUpdateStack) and rolled back"}},
			},
			calls: []string{"UpdateStack", "CancelUpdateStack"},
		},
	} {
		t.Run(tc.b.name, func(t *testing.T) {
			app := awstest.Name(t, "fail")
			w := &rewriter{next: http.DefaultTransport, b: tc.b}
			r := newRack(t, func(c *aws.Config) { c.HTTPClient = &http.Client{Transport: w} })
			w.stack = r.stack.StackName(app)
			ctx := t.Context()
			t.Cleanup(func() {
				w.mu.Lock()
				w.armed = false
				w.mu.Unlock()
				r.stack.Delete(t.Context(), app)
			})
			rt, err := r.stack.EnsureRoute(ctx, providers.RouteSpec{App: app, Process: "web", Port: 8080})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := r.stack.Apply(ctx, release(app, "R1", "t1", imageV1, nil, 1, 1, rt.Binding)); err != nil {
				t.Fatal(err)
			}
			w.mu.Lock()
			w.armed = true
			w.mu.Unlock()
			ro, err := r.stack.Apply(ctx, release(app, "R2", "t2", imageV2, nil, 1, 1, rt.Binding))
			if err != nil {
				t.Fatal(err)
			}
			var got []observed
			for range tc.want {
				st, err := r.stack.Status(ctx, app)
				if err != nil {
					t.Fatalf("Status: %v", err)
				}
				o := observed{Release: st.Release}
				if len(st.Rollouts) > 0 {
					o.Rollout = st.Rollouts[0]
					if o.Rollout.ID != ro.ID {
						t.Errorf("newest rollout %+v, want the applied one %s", o.Rollout, ro.ID)
					}
					if start := w.eventTime(0); !o.Rollout.Started.Equal(start) {
						t.Errorf("rollout %+v started at %s, want the start event's time %s", o.Rollout, o.Rollout.Started, start)
					}
					o.Rollout.ID, o.Rollout.Started = "", time.Time{}
				}
				got = append(got, o)
				if tc.act != nil {
					tc.act(t, r, app, ro, w)
				}
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("observations (-want +got):\n%s", diff)
			}
			w.mu.Lock()
			calls := slices.Clone(w.calls)
			w.mu.Unlock()
			if diff := cmp.Diff(tc.calls, calls); diff != "" {
				t.Errorf("intercepted calls (-want +got):\n%s", diff)
			}
			// The update never reached moto, as a rolled-back update
			// leaves AWS's resources: web still runs R1's image.
			if got := r.services(t, app, "web")["web"].Image; got != imageV1.Ref() {
				t.Errorf("web's image after the rollback = %s, want R1's %s", got, imageV1.Ref())
			}
		})
	}
}
