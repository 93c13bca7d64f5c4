package albbalancer_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	elbv2 "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"

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
