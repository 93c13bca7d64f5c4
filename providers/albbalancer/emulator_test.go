package albbalancer_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	elbv2 "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	"github.com/aws/smithy-go"

	"github.com/convox-go/convox/internal/awserr"
	"github.com/convox-go/convox/internal/awstest"
	"github.com/convox-go/convox/providers/albbalancer"
)

// shim stands in front of the AWS emulator and answers the ELBv2
// operations the emulator lacks, forwarding every other request:
//
//   - ModifyTargetGroup: the health check settings are kept per target
//     group and written into the emulator's DescribeTargetGroups answers,
//     so a modified target group reads back as AWS would show it;
//   - AddListenerCertificates: the certificates are recorded per listener.
type shim struct {
	URL    string
	target string

	mu     sync.Mutex
	health map[string]map[string]string // target group ARN -> element -> value
	certs  map[string][]string          // listener ARN -> added certificates
}

// healthFields are the ModifyTargetGroup parameters the shim keeps; each
// is also the element name in a DescribeTargetGroups answer.
var healthFields = []string{"HealthCheckPath", "HealthCheckIntervalSeconds", "HealthCheckTimeoutSeconds", "HealthyThresholdCount", "UnhealthyThresholdCount"}

func newShim(t *testing.T, target string) *shim {
	s := &shim{target: strings.TrimRight(target, "/"), health: map[string]map[string]string{}, certs: map[string][]string{}}
	srv := httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(srv.Close)
	s.URL = srv.URL
	return s
}

// addedCertificates returns the certificates added to a listener.
func (s *shim) addedCertificates(listener string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.certs[listener])
}

func (s *shim) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	form, _ := url.ParseQuery(string(body))
	switch action := form.Get("Action"); action {
	case "ModifyTargetGroup":
		arn := form.Get("TargetGroupArn")
		s.mu.Lock()
		if s.health[arn] == nil {
			s.health[arn] = map[string]string{}
		}
		for _, f := range healthFields {
			if v := form.Get(f); v != "" {
				s.health[arn][f] = v
			}
		}
		s.mu.Unlock()
		writeXML(w, action, "<TargetGroups><member><TargetGroupArn>"+arn+"</TargetGroupArn></member></TargetGroups>")
	case "AddListenerCertificates":
		l := form.Get("ListenerArn")
		var members string
		s.mu.Lock()
		for i := 1; form.Has(fmt.Sprintf("Certificates.member.%d.CertificateArn", i)); i++ {
			c := form.Get(fmt.Sprintf("Certificates.member.%d.CertificateArn", i))
			if !slices.Contains(s.certs[l], c) {
				s.certs[l] = append(s.certs[l], c)
			}
			members += "<member><CertificateArn>" + c + "</CertificateArn></member>"
		}
		s.mu.Unlock()
		writeXML(w, action, "<Certificates>"+members+"</Certificates>")
	default:
		s.forward(w, r, action, body)
	}
}

func writeXML(w http.ResponseWriter, action, result string) {
	w.Header().Set("Content-Type", "text/xml")
	fmt.Fprintf(w, `<%sResponse xmlns="http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/"><%sResult>%s</%sResult><ResponseMetadata><RequestId>shim</RequestId></ResponseMetadata></%sResponse>`,
		action, action, result, action, action)
}

func (s *shim) forward(w http.ResponseWriter, r *http.Request, action string, body []byte) {
	req, err := http.NewRequestWithContext(r.Context(), r.Method, s.target+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	req.Header = r.Header.Clone()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	if action == "DescribeTargetGroups" && resp.StatusCode == http.StatusOK {
		out = s.patch(out)
	}
	for k, vs := range resp.Header {
		if k != "Content-Length" {
			w.Header()[k] = vs
		}
	}
	w.WriteHeader(resp.StatusCode)
	w.Write(out)
}

// patch writes the kept health check settings into a DescribeTargetGroups
// answer: within each target group's element, which starts with its ARN.
func (s *shim) patch(body []byte) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	text := string(body)
	for arn, fields := range s.health {
		start := strings.Index(text, "<TargetGroupArn>"+arn+"</TargetGroupArn>")
		if start < 0 {
			continue
		}
		end := len(text)
		if next := strings.Index(text[start+1:], "<TargetGroupArn>"); next >= 0 {
			end = start + 1 + next
		}
		seg := text[start:end]
		for f, v := range fields {
			seg = regexp.MustCompile("<"+f+">[^<]*</"+f+">").ReplaceAllString(seg, "<"+f+">"+v+"</"+f+">")
		}
		text = text[:start] + seg + text[end:]
	}
	return []byte(text)
}

// env is a balancer on the emulator, behind the shim, with its client's
// calls counted.
type env struct {
	b      *albbalancer.Balancer
	client *elbv2.Client
	calls  *awstest.Counter
	shim   *shim
	opts   albbalancer.Options
	app    string // an app name of the test's own, when it needs one
}

// newEnv returns a balancer with a load balancer of its own on the
// emulator; the test skips when the emulator is not running. change, if
// not nil, adjusts the options.
func newEnv(t *testing.T, change func(*albbalancer.Options)) *env {
	t.Helper()
	sh := newShim(t, awstest.Endpoint(t))
	calls := awstest.NewCounter()
	cfg := awstest.ConfigFor(sh.URL)
	cfg.APIOptions = append(cfg.APIOptions, calls.AddTo)
	client := elbv2.NewFromConfig(cfg)
	opts := albbalancer.Options{
		LoadBalancer:   awstest.Name(t, "alb"),
		Subnets:        []string{"subnet-a", "subnet-b"},
		SecurityGroups: []string{"sg-1"},
		Domain:         "apps.example.com",
	}
	if change != nil {
		change(&opts)
	}
	return &env{b: albbalancer.New(client, &opts), client: client, calls: calls, shim: sh, opts: opts}
}

// awsAnswers wraps the emulator's client so that it answers as AWS does
// where the emulator differs: a lookup of missing resources by name or ARN
// fails with the not-found error instead of returning an empty list, a
// listener lookup of a missing load balancer fails with
// LoadBalancerNotFound, and a create identical to an existing load
// balancer or target group returns the existing one instead of a
// duplicate-name error.
type awsAnswers struct{ albbalancer.API }

func apiError(code string) error {
	return &smithy.GenericAPIError{Code: code, Message: code, Fault: smithy.FaultClient}
}

func (a awsAnswers) DescribeLoadBalancers(ctx context.Context, in *elbv2.DescribeLoadBalancersInput, o ...func(*elbv2.Options)) (*elbv2.DescribeLoadBalancersOutput, error) {
	out, err := a.API.DescribeLoadBalancers(ctx, in, o...)
	if err == nil && len(in.Names)+len(in.LoadBalancerArns) > len(out.LoadBalancers) {
		return nil, apiError("LoadBalancerNotFound")
	}
	return out, err
}

func (a awsAnswers) DescribeTargetGroups(ctx context.Context, in *elbv2.DescribeTargetGroupsInput, o ...func(*elbv2.Options)) (*elbv2.DescribeTargetGroupsOutput, error) {
	out, err := a.API.DescribeTargetGroups(ctx, in, o...)
	if err == nil && len(in.Names)+len(in.TargetGroupArns) > len(out.TargetGroups) {
		return nil, apiError("TargetGroupNotFound")
	}
	return out, err
}

func (a awsAnswers) DescribeRules(ctx context.Context, in *elbv2.DescribeRulesInput, o ...func(*elbv2.Options)) (*elbv2.DescribeRulesOutput, error) {
	out, err := a.API.DescribeRules(ctx, in, o...)
	if err == nil && len(in.RuleArns) > len(out.Rules) {
		return nil, apiError("RuleNotFound")
	}
	return out, err
}

func (a awsAnswers) DescribeListeners(ctx context.Context, in *elbv2.DescribeListenersInput, o ...func(*elbv2.Options)) (*elbv2.DescribeListenersOutput, error) {
	if in.LoadBalancerArn != nil {
		if _, err := a.DescribeLoadBalancers(ctx, &elbv2.DescribeLoadBalancersInput{LoadBalancerArns: []string{*in.LoadBalancerArn}}, o...); err != nil {
			return nil, err
		}
	}
	return a.API.DescribeListeners(ctx, in, o...)
}

func (a awsAnswers) CreateLoadBalancer(ctx context.Context, in *elbv2.CreateLoadBalancerInput, o ...func(*elbv2.Options)) (*elbv2.CreateLoadBalancerOutput, error) {
	out, err := a.API.CreateLoadBalancer(ctx, in, o...)
	if awserr.Code(err) == "DuplicateLoadBalancerName" {
		d, derr := a.API.DescribeLoadBalancers(ctx, &elbv2.DescribeLoadBalancersInput{Names: []string{*in.Name}}, o...)
		if derr != nil {
			return nil, derr
		}
		return &elbv2.CreateLoadBalancerOutput{LoadBalancers: d.LoadBalancers}, nil
	}
	return out, err
}

func (a awsAnswers) CreateTargetGroup(ctx context.Context, in *elbv2.CreateTargetGroupInput, o ...func(*elbv2.Options)) (*elbv2.CreateTargetGroupOutput, error) {
	out, err := a.API.CreateTargetGroup(ctx, in, o...)
	if awserr.Code(err) == "DuplicateTargetGroupName" {
		d, derr := a.API.DescribeTargetGroups(ctx, &elbv2.DescribeTargetGroupsInput{Names: []string{*in.Name}}, o...)
		if derr != nil {
			return nil, derr
		}
		return &elbv2.CreateTargetGroupOutput{TargetGroups: d.TargetGroups}, nil
	}
	return out, err
}

// hideFirst wraps a client so that the first lookup of load balancers and
// the first lookup of target groups by name answer "none", as when a
// concurrent writer creates them between the lookup and the create.
type hideFirst struct {
	albbalancer.API
	lbs, tgs atomic.Bool
}

func (h *hideFirst) DescribeLoadBalancers(ctx context.Context, in *elbv2.DescribeLoadBalancersInput, o ...func(*elbv2.Options)) (*elbv2.DescribeLoadBalancersOutput, error) {
	if h.lbs.CompareAndSwap(false, true) {
		return &elbv2.DescribeLoadBalancersOutput{}, nil
	}
	return h.API.DescribeLoadBalancers(ctx, in, o...)
}

func (h *hideFirst) DescribeTargetGroups(ctx context.Context, in *elbv2.DescribeTargetGroupsInput, o ...func(*elbv2.Options)) (*elbv2.DescribeTargetGroupsOutput, error) {
	if len(in.Names) > 0 && h.tgs.CompareAndSwap(false, true) {
		return &elbv2.DescribeTargetGroupsOutput{}, nil
	}
	return h.API.DescribeTargetGroups(ctx, in, o...)
}

// withAPI returns a balancer with e's options over api.
func (e *env) withAPI(api albbalancer.API) *albbalancer.Balancer {
	return albbalancer.New(api, &e.opts)
}
