// Package elbtest is an in-process Elastic Load Balancing (classic)
// endpoint for tests. It speaks the service's wire protocol — the AWS
// query protocol: form-encoded POST bodies with Action=<Operation> and
// Version=2012-06-01, answered with the XML documents the SDK parses — so
// that providers are exercised through the real aws-sdk-go-v2
// elasticloadbalancing client, pointed at the server with BaseEndpoint:
//
//	srv := elbtest.New(t)
//	client := elasticloadbalancing.NewFromConfig(awstest.ConfigFor(srv.URL))
//
// It keeps load balancers with their listeners, health check, attributes,
// registered instances and tags, and answers as AWS does where a provider
// can tell the difference: a missing load balancer is the
// LoadBalancerNotFound error (not an empty list), a create identical to an
// existing load balancer returns it while a different one is
// DuplicateLoadBalancerName, a listener on a taken port with other
// settings is DuplicateListener, deleting a missing load balancer or
// listener succeeds, and out-of-range settings are ValidationError.
//
// # Operations
//
// CreateLoadBalancer, DescribeLoadBalancers (paged by PageSize and
// Marker), DeleteLoadBalancer, CreateLoadBalancerListeners,
// DeleteLoadBalancerListeners, ConfigureHealthCheck,
// ModifyLoadBalancerAttributes, DescribeLoadBalancerAttributes,
// RegisterInstancesWithLoadBalancer, DeregisterInstancesFromLoadBalancer,
// DescribeInstanceHealth, AddTags and DescribeTags. Other operations
// answer InvalidAction.
//
// # Instance health
//
// No health check runs. A registered instance is reported InService until
// the test sets another state with SetInstanceState (OutOfService with a
// reason, Unknown, or InService while deregistration drains), so every run
// sees the same states. FailNext makes the next call of an operation fail
// with a chosen error, for error-mapping tests.
//
// # Tasks behind load balancers
//
// An Attacher does in tests what ECS does for services with load
// balancers, when the ECS endpoint (package ecstest) runs no real tasks:
// it registers a cluster's running tasks with the classic load balancers
// (of this server, or of AWS) and target groups (of an ELBv2 endpoint)
// their services name.
package elbtest

import (
	"encoding/xml"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Version is the API version the server speaks.
const Version = "2012-06-01"

// Region appears in every DNS name the server makes.
const Region = "us-east-1"

const xmlns = "http://elasticloadbalancing.amazonaws.com/doc/" + Version + "/"

// epoch is the creation time of the first load balancer; each later one
// is a second later, so every run sees the same times.
var epoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// InstanceState is the health the server reports for a registered
// instance, as DescribeInstanceHealth does: State is InService,
// OutOfService or Unknown; ReasonCode is ELB, Instance or N/A.
type InstanceState struct {
	State       string
	ReasonCode  string
	Description string
}

// InService is the state of a registered instance the test set nothing for.
var InService = InstanceState{State: "InService", ReasonCode: "N/A", Description: "N/A"}

// Server is an in-process classic ELB endpoint. Its methods are safe for
// concurrent use.
type Server struct {
	// URL is the endpoint to use as the client's BaseEndpoint.
	URL string

	hs *httptest.Server

	mu     sync.Mutex
	seq    int
	lbs    map[string]*loadBalancer
	calls  map[string]int
	faults map[string][]apiError
}

// loadBalancer is the server's state of one load balancer.
type loadBalancer struct {
	name      string
	dns       string
	scheme    string
	created   time.Time
	listeners []listener // by port
	subnets   []string
	zones     []string
	groups    []string
	health    healthCheck
	draining  bool
	drainSecs int
	crossZone bool
	idleSecs  int
	instances []string // registered, sorted
	states    map[string]InstanceState
	tags      map[string]string
	tagOrder  []string
}

type listener struct {
	Protocol         string `xml:"Protocol"`
	LoadBalancerPort int    `xml:"LoadBalancerPort"`
	InstanceProtocol string `xml:"InstanceProtocol"`
	InstancePort     int    `xml:"InstancePort"`
	SSLCertificateID string `xml:"SSLCertificateId,omitempty"`
}

type healthCheck struct {
	Target             string `xml:"Target"`
	Interval           int    `xml:"Interval"`
	Timeout            int    `xml:"Timeout"`
	UnhealthyThreshold int    `xml:"UnhealthyThreshold"`
	HealthyThreshold   int    `xml:"HealthyThreshold"`
}

// apiError is an error answer.
type apiError struct {
	status  int
	code    string
	message string
}

func (e *apiError) Error() string { return e.code + ": " + e.message }

func sender(code, format string, args ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, code: code, message: fmt.Sprintf(format, args...)}
}

func notFound(name string) *apiError {
	return &apiError{status: http.StatusBadRequest, code: "LoadBalancerNotFound", message: fmt.Sprintf("There is no ACTIVE Load Balancer named '%s'", name)}
}

// New starts a server that the test's cleanup stops.
func New(t testing.TB) *Server {
	t.Helper()
	s := NewServer()
	t.Cleanup(s.Close)
	return s
}

// NewServer starts a server; Close stops it.
func NewServer() *Server {
	s := &Server{lbs: map[string]*loadBalancer{}, calls: map[string]int{}, faults: map[string][]apiError{}}
	s.hs = httptest.NewServer(http.HandlerFunc(s.serveHTTP))
	s.URL = s.hs.URL
	return s
}

// Close stops the server.
func (s *Server) Close() { s.hs.Close() }

// Calls returns how many requests of operation op the server answered,
// failed ones included.
func (s *Server) Calls(op string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[op]
}

// FailNext makes the next call of operation op fail with the API error
// code and HTTP status (400 for client errors such as Throttling or
// AccessDenied, 500 or 503 for server errors). Calls queue up.
func (s *Server) FailNext(op, code string, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults[op] = append(s.faults[op], apiError{status: status, code: code, message: "injected by the test"})
}

// SetInstanceState sets the health DescribeInstanceHealth reports for an
// instance of a load balancer, registered or not yet. It fails when the
// load balancer does not exist.
func (s *Server) SetInstanceState(lb, instance string, st InstanceState) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.lbs[lb]
	if !ok {
		return notFound(lb)
	}
	l.states[instance] = st
	return nil
}

// handlers maps operations to their handlers. Each returns the result
// element (without its name) or an error.
var handlers = map[string]func(*Server, url.Values) (any, *apiError){
	"CreateLoadBalancer":                  (*Server).createLoadBalancer,
	"DescribeLoadBalancers":               (*Server).describeLoadBalancers,
	"DeleteLoadBalancer":                  (*Server).deleteLoadBalancer,
	"CreateLoadBalancerListeners":         (*Server).createListeners,
	"DeleteLoadBalancerListeners":         (*Server).deleteListeners,
	"ConfigureHealthCheck":                (*Server).configureHealthCheck,
	"ModifyLoadBalancerAttributes":        (*Server).modifyAttributes,
	"DescribeLoadBalancerAttributes":      (*Server).describeAttributes,
	"RegisterInstancesWithLoadBalancer":   (*Server).registerInstances,
	"DeregisterInstancesFromLoadBalancer": (*Server).deregisterInstances,
	"DescribeInstanceHealth":              (*Server).describeInstanceHealth,
	"AddTags":                             (*Server).addTags,
	"DescribeTags":                        (*Server).describeTags,
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		writeError(w, &apiError{status: http.StatusMethodNotAllowed, code: "InvalidAction", message: "the query protocol needs POST"})
		return
	}
	if err := r.ParseForm(); err != nil {
		writeError(w, sender("MalformedQueryString", "%v", err))
		return
	}
	form := r.PostForm
	action := form.Get("Action")
	if v := form.Get("Version"); v != Version {
		writeError(w, sender("InvalidAction", "version %q of action %q is not supported; the server speaks %s", v, action, Version))
		return
	}
	h, ok := handlers[action]
	s.mu.Lock()
	s.calls[action]++
	var fault *apiError
	if q := s.faults[action]; len(q) > 0 {
		fault = &q[0]
		s.faults[action] = q[1:]
	}
	var result any
	var err *apiError
	switch {
	case fault != nil:
		err = fault
	case !ok:
		err = sender("InvalidAction", "the action %s is not valid for this web service", action)
	default:
		result, err = h(s, form)
	}
	s.mu.Unlock()
	if err != nil {
		writeError(w, err)
		return
	}
	body, merr := xml.Marshal(result)
	if merr != nil {
		writeError(w, &apiError{status: http.StatusInternalServerError, code: "InternalFailure", message: merr.Error()})
		return
	}
	w.Header().Set("Content-Type", "text/xml")
	w.Header().Set("X-Amzn-Requestid", requestID)
	fmt.Fprintf(w, `<%sResponse xmlns="%s"><%sResult>%s</%sResult><ResponseMetadata><RequestId>%s</RequestId></ResponseMetadata></%sResponse>`,
		action, xmlns, action, inner(body), action, requestID, action)
}

// requestID is the request ID of every answer.
const requestID = "00000000-0000-0000-0000-000000000000"

// inner strips the outer element of a marshaled result: handlers return
// a struct named "r" whose children form the result element's content.
func inner(b []byte) string {
	s := string(b)
	s = strings.TrimPrefix(s, "<r>")
	return strings.TrimSuffix(s, "</r>")
}

func writeError(w http.ResponseWriter, e *apiError) {
	typ := "Sender"
	if e.status >= 500 {
		typ = "Receiver"
	}
	var msg strings.Builder
	xml.EscapeText(&msg, []byte(e.message))
	w.Header().Set("Content-Type", "text/xml")
	w.Header().Set("X-Amzn-Requestid", requestID)
	w.WriteHeader(e.status)
	fmt.Fprintf(w, `<ErrorResponse xmlns="%s"><Error><Type>%s</Type><Code>%s</Code><Message>%s</Message></Error><RequestId>%s</RequestId></ErrorResponse>`,
		xmlns, typ, e.code, msg.String(), requestID)
}

// members returns the list <prefix>.member.1, .member.2, ...
func members(form url.Values, prefix string) []string {
	var out []string
	for i := 1; ; i++ {
		k := fmt.Sprintf("%s.member.%d", prefix, i)
		if !form.Has(k) {
			return out
		}
		out = append(out, form.Get(k))
	}
}

// structs returns the fields of the list of structures <prefix>.member.N.<field>.
func structs(form url.Values, prefix string, fields ...string) []map[string]string {
	var out []map[string]string
	for i := 1; ; i++ {
		m := map[string]string{}
		for _, f := range fields {
			k := fmt.Sprintf("%s.member.%d.%s", prefix, i, f)
			if form.Has(k) {
				m[f] = form.Get(k)
			}
		}
		if len(m) == 0 {
			return out
		}
		out = append(out, m)
	}
}

func atoi(s string) (int, bool) {
	n, err := strconv.Atoi(s)
	return n, err == nil
}

// validName checks a load balancer name as AWS does.
func validName(name string) bool {
	if name == "" || len(name) > 32 || name[0] == '-' || name[len(name)-1] == '-' {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

func (s *Server) get(form url.Values) (*loadBalancer, *apiError) {
	name := form.Get("LoadBalancerName")
	if name == "" {
		return nil, sender("ValidationError", "LoadBalancerName is required")
	}
	l, ok := s.lbs[name]
	if !ok {
		return nil, notFound(name)
	}
	return l, nil
}

// parseListeners reads and checks Listeners.member.N.
func parseListeners(form url.Values) ([]listener, *apiError) {
	var out []listener
	for _, m := range structs(form, "Listeners", "Protocol", "LoadBalancerPort", "InstanceProtocol", "InstancePort", "SSLCertificateId") {
		l := listener{Protocol: strings.ToUpper(m["Protocol"]), InstanceProtocol: strings.ToUpper(m["InstanceProtocol"]), SSLCertificateID: m["SSLCertificateId"]}
		var ok1, ok2 bool
		l.LoadBalancerPort, ok1 = atoi(m["LoadBalancerPort"])
		l.InstancePort, ok2 = atoi(m["InstancePort"])
		if !ok1 || !ok2 || l.LoadBalancerPort < 1 || l.LoadBalancerPort > 65535 || l.InstancePort < 1 || l.InstancePort > 65535 {
			return nil, sender("ValidationError", "listener ports must be 1-65535")
		}
		switch l.Protocol {
		case "HTTP", "HTTPS", "TCP", "SSL":
		default:
			return nil, sender("ValidationError", "invalid listener protocol %q", m["Protocol"])
		}
		if l.InstanceProtocol == "" {
			l.InstanceProtocol = l.Protocol
			if l.Protocol == "HTTPS" {
				l.InstanceProtocol = "HTTP"
			}
		}
		if (l.Protocol == "HTTPS" || l.Protocol == "SSL") && l.SSLCertificateID == "" {
			return nil, sender("ValidationError", "Secure Listeners need to specify a SSLCertificateId")
		}
		if l.Protocol != "HTTPS" && l.Protocol != "SSL" && l.SSLCertificateID != "" {
			return nil, sender("ValidationError", "an SSLCertificateId needs an HTTPS or SSL listener")
		}
		out = append(out, l)
	}
	return out, nil
}

func sortListeners(ls []listener) {
	sort.Slice(ls, func(i, j int) bool { return ls[i].LoadBalancerPort < ls[j].LoadBalancerPort })
}

func sameStrings(a, b []string) bool {
	x, y := append([]string(nil), a...), append([]string(nil), b...)
	sort.Strings(x)
	sort.Strings(y)
	return strings.Join(x, ",") == strings.Join(y, ",")
}

func (s *Server) createLoadBalancer(form url.Values) (any, *apiError) {
	name := form.Get("LoadBalancerName")
	if !validName(name) {
		return nil, sender("ValidationError", "LoadBalancerName %q must have 1-32 letters, digits and hyphens and must not begin or end with a hyphen", name)
	}
	ls, err := parseListeners(form)
	if err != nil {
		return nil, err
	}
	if len(ls) == 0 {
		return nil, sender("ValidationError", "at least one listener is required")
	}
	sortListeners(ls)
	for i := 1; i < len(ls); i++ {
		if ls[i].LoadBalancerPort == ls[i-1].LoadBalancerPort {
			return nil, sender("DuplicateListener", "two listeners use port %d", ls[i].LoadBalancerPort)
		}
	}
	subnets, zones, groups := members(form, "Subnets"), members(form, "AvailabilityZones"), members(form, "SecurityGroups")
	if len(subnets) == 0 && len(zones) == 0 {
		return nil, sender("ValidationError", "Either AvailabilityZones or SubnetIds must be specified")
	}
	scheme := form.Get("Scheme")
	switch scheme {
	case "":
		scheme = "internet-facing"
	case "internet-facing", "internal":
	default:
		return nil, sender("InvalidScheme", "scheme %q is not internet-facing or internal", scheme)
	}
	tags, terr := parseTags(form)
	if terr != nil {
		return nil, terr
	}
	if l, ok := s.lbs[name]; ok {
		if l.scheme == scheme && sameListeners(l.listeners, ls) && sameStrings(l.subnets, subnets) && sameStrings(l.zones, zones) && sameStrings(l.groups, groups) {
			return struct {
				XMLName xml.Name `xml:"r"`
				DNSName string   `xml:"DNSName"`
			}{DNSName: l.dns}, nil
		}
		return nil, sender("DuplicateLoadBalancerName", "Load Balancer named '%s' already exists and it is configured with different parameters", name)
	}
	s.seq++
	dns := fmt.Sprintf("%s-%010d.%s.elb.amazonaws.com", name, 1000000000+s.seq, Region)
	if scheme == "internal" {
		dns = "internal-" + dns
	}
	l := &loadBalancer{
		name: name, dns: dns, scheme: scheme, created: epoch.Add(time.Duration(s.seq) * time.Second),
		listeners: ls, subnets: subnets, zones: zones, groups: groups,
		health:    healthCheck{Target: fmt.Sprintf("TCP:%d", ls[0].InstancePort), Interval: 30, Timeout: 5, UnhealthyThreshold: 2, HealthyThreshold: 10},
		drainSecs: 300, idleSecs: 60, states: map[string]InstanceState{}, tags: map[string]string{},
	}
	for _, t := range tags {
		l.setTag(t[0], t[1])
	}
	s.lbs[name] = l
	return struct {
		XMLName xml.Name `xml:"r"`
		DNSName string   `xml:"DNSName"`
	}{DNSName: dns}, nil
}

func sameListeners(a, b []listener) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// parseTags reads Tags.member.N.Key/Value.
func parseTags(form url.Values) ([][2]string, *apiError) {
	var out [][2]string
	seen := map[string]bool{}
	for _, m := range structs(form, "Tags", "Key", "Value") {
		k := m["Key"]
		if k == "" || len(k) > 128 || len(m["Value"]) > 256 {
			return nil, sender("ValidationError", "tag keys must have 1-128 characters and values at most 256")
		}
		if seen[k] {
			return nil, sender("DuplicateTagKeys", "tag key %q appears twice", k)
		}
		seen[k] = true
		out = append(out, [2]string{k, m["Value"]})
	}
	return out, nil
}

func (l *loadBalancer) setTag(k, v string) {
	if _, ok := l.tags[k]; !ok {
		l.tagOrder = append(l.tagOrder, k)
	}
	l.tags[k] = v
}

type lbDescription struct {
	AvailabilityZones         []string      `xml:"AvailabilityZones>member"`
	CanonicalHostedZoneName   string        `xml:"CanonicalHostedZoneName"`
	CanonicalHostedZoneNameID string        `xml:"CanonicalHostedZoneNameID"`
	CreatedTime               string        `xml:"CreatedTime"`
	DNSName                   string        `xml:"DNSName"`
	HealthCheck               healthCheck   `xml:"HealthCheck"`
	Instances                 []instanceRef `xml:"Instances>member"`
	ListenerDescriptions      []listenerRef `xml:"ListenerDescriptions>member"`
	LoadBalancerName          string        `xml:"LoadBalancerName"`
	Scheme                    string        `xml:"Scheme"`
	SecurityGroups            []string      `xml:"SecurityGroups>member"`
	Subnets                   []string      `xml:"Subnets>member"`
	VPCId                     string        `xml:"VPCId,omitempty"`
}

type instanceRef struct {
	InstanceID string `xml:"InstanceId"`
}

type listenerRef struct {
	Listener    listener `xml:"Listener"`
	PolicyNames struct{} `xml:"PolicyNames"`
}

func (l *loadBalancer) describe() lbDescription {
	d := lbDescription{
		AvailabilityZones: l.zones, CanonicalHostedZoneName: l.dns, CanonicalHostedZoneNameID: "Z35SXDOTRQ7X7K",
		CreatedTime: l.created.Format(time.RFC3339), DNSName: l.dns, HealthCheck: l.health, LoadBalancerName: l.name,
		Scheme: l.scheme, SecurityGroups: l.groups, Subnets: l.subnets,
	}
	if len(d.AvailabilityZones) == 0 {
		for i := range l.subnets {
			d.AvailabilityZones = append(d.AvailabilityZones, fmt.Sprintf("%s%c", Region, 'a'+i%3))
		}
	}
	if len(l.subnets) > 0 {
		d.VPCId = "vpc-00000001"
	}
	for _, id := range l.instances {
		d.Instances = append(d.Instances, instanceRef{InstanceID: id})
	}
	for _, ls := range l.listeners {
		d.ListenerDescriptions = append(d.ListenerDescriptions, listenerRef{Listener: ls})
	}
	return d
}

func (s *Server) describeLoadBalancers(form url.Values) (any, *apiError) {
	type result struct {
		XMLName    xml.Name        `xml:"r"`
		LBs        []lbDescription `xml:"LoadBalancerDescriptions>member"`
		NextMarker string          `xml:"NextMarker,omitempty"`
	}
	names := members(form, "LoadBalancerNames")
	if len(names) > 0 {
		var r result
		for _, n := range names {
			l, ok := s.lbs[n]
			if !ok {
				return nil, notFound(n)
			}
			r.LBs = append(r.LBs, l.describe())
		}
		return r, nil
	}
	all := make([]string, 0, len(s.lbs))
	for n := range s.lbs {
		all = append(all, n)
	}
	sort.Strings(all)
	size := 400
	if v := form.Get("PageSize"); v != "" {
		n, ok := atoi(v)
		if !ok || n < 1 || n > 400 {
			return nil, sender("ValidationError", "PageSize must be 1-400")
		}
		size = n
	}
	start := 0
	if m := form.Get("Marker"); m != "" {
		n, ok := atoi(m)
		if !ok || n < 0 || n > len(all) {
			return nil, sender("InvalidParameterValue", "invalid marker %q", m)
		}
		start = n
	}
	var r result
	end := min(start+size, len(all))
	for _, n := range all[start:end] {
		r.LBs = append(r.LBs, s.lbs[n].describe())
	}
	if end < len(all) {
		r.NextMarker = strconv.Itoa(end)
	}
	return r, nil
}

// empty is the content of a result element without fields.
type empty struct {
	XMLName xml.Name `xml:"r"`
}

func (s *Server) deleteLoadBalancer(form url.Values) (any, *apiError) {
	name := form.Get("LoadBalancerName")
	if name == "" {
		return nil, sender("ValidationError", "LoadBalancerName is required")
	}
	delete(s.lbs, name)
	return empty{}, nil
}

func (s *Server) createListeners(form url.Values) (any, *apiError) {
	l, err := s.get(form)
	if err != nil {
		return nil, err
	}
	ls, err := parseListeners(form)
	if err != nil {
		return nil, err
	}
	if len(ls) == 0 {
		return nil, sender("ValidationError", "at least one listener is required")
	}
	add := []listener{}
	for _, n := range ls {
		dup := false
		for _, o := range l.listeners {
			if o.LoadBalancerPort == n.LoadBalancerPort {
				if o != n {
					return nil, sender("DuplicateListener", "a listener already exists for %s with LoadBalancerPort %d, but with a different InstancePort, Protocol, or SSLCertificateId", l.name, n.LoadBalancerPort)
				}
				dup = true
			}
		}
		if !dup {
			add = append(add, n)
		}
	}
	l.listeners = append(l.listeners, add...)
	sortListeners(l.listeners)
	return empty{}, nil
}

func (s *Server) deleteListeners(form url.Values) (any, *apiError) {
	l, err := s.get(form)
	if err != nil {
		return nil, err
	}
	ports := map[int]bool{}
	for _, p := range members(form, "LoadBalancerPorts") {
		n, ok := atoi(p)
		if !ok {
			return nil, sender("ValidationError", "invalid port %q", p)
		}
		ports[n] = true
	}
	keep := l.listeners[:0]
	for _, o := range l.listeners {
		if !ports[o.LoadBalancerPort] {
			keep = append(keep, o)
		}
	}
	l.listeners = keep
	return empty{}, nil
}

func (s *Server) configureHealthCheck(form url.Values) (any, *apiError) {
	l, err := s.get(form)
	if err != nil {
		return nil, err
	}
	hc := healthCheck{Target: form.Get("HealthCheck.Target")}
	var ok [4]bool
	hc.Interval, ok[0] = atoi(form.Get("HealthCheck.Interval"))
	hc.Timeout, ok[1] = atoi(form.Get("HealthCheck.Timeout"))
	hc.UnhealthyThreshold, ok[2] = atoi(form.Get("HealthCheck.UnhealthyThreshold"))
	hc.HealthyThreshold, ok[3] = atoi(form.Get("HealthCheck.HealthyThreshold"))
	switch {
	case !ok[0] || !ok[1] || !ok[2] || !ok[3]:
		return nil, sender("ValidationError", "every health check field is required")
	case !validTarget(hc.Target):
		return nil, sender("ValidationError", "health check target %q is not PROTOCOL:PORT or HTTP(S):PORT/PATH", hc.Target)
	case hc.Interval < 5 || hc.Interval > 300:
		return nil, sender("ValidationError", "Interval must be 5-300")
	case hc.Timeout < 2 || hc.Timeout > 60:
		return nil, sender("ValidationError", "Timeout must be 2-60")
	case hc.Timeout >= hc.Interval:
		return nil, sender("ValidationError", "Interval must be greater than the timeout")
	case hc.HealthyThreshold < 2 || hc.HealthyThreshold > 10 || hc.UnhealthyThreshold < 2 || hc.UnhealthyThreshold > 10:
		return nil, sender("ValidationError", "thresholds must be 2-10")
	}
	l.health = hc
	return struct {
		XMLName     xml.Name    `xml:"r"`
		HealthCheck healthCheck `xml:"HealthCheck"`
	}{HealthCheck: hc}, nil
}

// validTarget checks a health check target: TCP:port, SSL:port,
// HTTP:port/path or HTTPS:port/path.
func validTarget(t string) bool {
	proto, rest, ok := strings.Cut(t, ":")
	if !ok {
		return false
	}
	port, path, hasPath := strings.Cut(rest, "/")
	n, ok := atoi(port)
	if !ok || n < 1 || n > 65535 {
		return false
	}
	switch proto {
	case "TCP", "SSL":
		return !hasPath
	case "HTTP", "HTTPS":
		return hasPath && len(path) < 1024
	}
	return false
}

type attributes struct {
	AccessLog struct {
		Enabled bool `xml:"Enabled"`
	} `xml:"AccessLog"`
	ConnectionDraining struct {
		Enabled bool `xml:"Enabled"`
		Timeout int  `xml:"Timeout"`
	} `xml:"ConnectionDraining"`
	ConnectionSettings struct {
		IdleTimeout int `xml:"IdleTimeout"`
	} `xml:"ConnectionSettings"`
	CrossZoneLoadBalancing struct {
		Enabled bool `xml:"Enabled"`
	} `xml:"CrossZoneLoadBalancing"`
}

func (l *loadBalancer) attributes() attributes {
	var a attributes
	a.ConnectionDraining.Enabled, a.ConnectionDraining.Timeout = l.draining, l.drainSecs
	a.ConnectionSettings.IdleTimeout = l.idleSecs
	a.CrossZoneLoadBalancing.Enabled = l.crossZone
	return a
}

func (s *Server) modifyAttributes(form url.Values) (any, *apiError) {
	l, err := s.get(form)
	if err != nil {
		return nil, err
	}
	const p = "LoadBalancerAttributes."
	next := *l
	if v := form.Get(p + "ConnectionDraining.Enabled"); v != "" {
		next.draining = v == "true"
	}
	if v := form.Get(p + "ConnectionDraining.Timeout"); v != "" {
		n, ok := atoi(v)
		if !ok || n < 1 || n > 3600 {
			return nil, sender("ValidationError", "ConnectionDraining.Timeout must be 1-3600")
		}
		next.drainSecs = n
	}
	if v := form.Get(p + "ConnectionSettings.IdleTimeout"); v != "" {
		n, ok := atoi(v)
		if !ok || n < 1 || n > 4000 {
			return nil, sender("ValidationError", "ConnectionSettings.IdleTimeout must be 1-4000")
		}
		next.idleSecs = n
	}
	if v := form.Get(p + "CrossZoneLoadBalancing.Enabled"); v != "" {
		next.crossZone = v == "true"
	}
	l.draining, l.drainSecs, l.idleSecs, l.crossZone = next.draining, next.drainSecs, next.idleSecs, next.crossZone
	return struct {
		XMLName          xml.Name   `xml:"r"`
		Attributes       attributes `xml:"LoadBalancerAttributes"`
		LoadBalancerName string     `xml:"LoadBalancerName"`
	}{Attributes: l.attributes(), LoadBalancerName: l.name}, nil
}

func (s *Server) describeAttributes(form url.Values) (any, *apiError) {
	l, err := s.get(form)
	if err != nil {
		return nil, err
	}
	return struct {
		XMLName    xml.Name   `xml:"r"`
		Attributes attributes `xml:"LoadBalancerAttributes"`
	}{Attributes: l.attributes()}, nil
}

func instanceIDs(form url.Values) ([]string, *apiError) {
	var out []string
	for _, m := range structs(form, "Instances", "InstanceId") {
		id := m["InstanceId"]
		if !strings.HasPrefix(id, "i-") || len(id) < 3 {
			return nil, sender("InvalidInstance", "EC2 instance %s is not in running state", id)
		}
		out = append(out, id)
	}
	return out, nil
}

func (l *loadBalancer) instanceList() any {
	r := struct {
		XMLName   xml.Name      `xml:"r"`
		Instances []instanceRef `xml:"Instances>member"`
	}{}
	for _, id := range l.instances {
		r.Instances = append(r.Instances, instanceRef{InstanceID: id})
	}
	return r
}

func (s *Server) registerInstances(form url.Values) (any, *apiError) {
	l, err := s.get(form)
	if err != nil {
		return nil, err
	}
	ids, err := instanceIDs(form)
	if err != nil {
		return nil, err
	}
	for _, id := range ids {
		i := sort.SearchStrings(l.instances, id)
		if i == len(l.instances) || l.instances[i] != id {
			l.instances = append(l.instances[:i], append([]string{id}, l.instances[i:]...)...)
		}
	}
	return l.instanceList(), nil
}

func (s *Server) deregisterInstances(form url.Values) (any, *apiError) {
	l, err := s.get(form)
	if err != nil {
		return nil, err
	}
	ids, err := instanceIDs(form)
	if err != nil {
		return nil, err
	}
	for _, id := range ids {
		i := sort.SearchStrings(l.instances, id)
		if i == len(l.instances) || l.instances[i] != id {
			return nil, sender("InvalidInstance", "the instance %s is not registered with %s", id, l.name)
		}
		l.instances = append(l.instances[:i], l.instances[i+1:]...)
	}
	return l.instanceList(), nil
}

func (s *Server) describeInstanceHealth(form url.Values) (any, *apiError) {
	l, err := s.get(form)
	if err != nil {
		return nil, err
	}
	ids, err := instanceIDs(form)
	if err != nil {
		return nil, err
	}
	if len(ids) == 0 {
		ids = l.instances
	}
	type state struct {
		Description string `xml:"Description"`
		InstanceID  string `xml:"InstanceId"`
		ReasonCode  string `xml:"ReasonCode"`
		State       string `xml:"State"`
	}
	r := struct {
		XMLName xml.Name `xml:"r"`
		States  []state  `xml:"InstanceStates>member"`
	}{}
	for _, id := range ids {
		if i := sort.SearchStrings(l.instances, id); i == len(l.instances) || l.instances[i] != id {
			return nil, sender("InvalidInstance", "the instance %s is not registered with %s", id, l.name)
		}
		st, ok := l.states[id]
		if !ok {
			st = InService
		}
		r.States = append(r.States, state{Description: st.Description, InstanceID: id, ReasonCode: st.ReasonCode, State: st.State})
	}
	return r, nil
}

func (s *Server) addTags(form url.Values) (any, *apiError) {
	names := members(form, "LoadBalancerNames")
	if len(names) != 1 {
		return nil, sender("ValidationError", "AddTags takes exactly one load balancer name")
	}
	l, ok := s.lbs[names[0]]
	if !ok {
		return nil, notFound(names[0])
	}
	tags, err := parseTags(form)
	if err != nil {
		return nil, err
	}
	if len(tags) == 0 {
		return nil, sender("ValidationError", "Tags is required")
	}
	n := len(l.tags)
	for _, t := range tags {
		if _, ok := l.tags[t[0]]; !ok {
			n++
		}
	}
	if n > 50 {
		return nil, sender("TooManyTags", "a load balancer has at most 50 tags")
	}
	for _, t := range tags {
		l.setTag(t[0], t[1])
	}
	return empty{}, nil
}

func (s *Server) describeTags(form url.Values) (any, *apiError) {
	names := members(form, "LoadBalancerNames")
	if len(names) == 0 || len(names) > 20 {
		return nil, sender("ValidationError", "DescribeTags takes 1-20 load balancer names")
	}
	type tag struct {
		Key   string `xml:"Key"`
		Value string `xml:"Value"`
	}
	type description struct {
		LoadBalancerName string `xml:"LoadBalancerName"`
		Tags             []tag  `xml:"Tags>member"`
	}
	r := struct {
		XMLName      xml.Name      `xml:"r"`
		Descriptions []description `xml:"TagDescriptions>member"`
	}{}
	for _, n := range names {
		l, ok := s.lbs[n]
		if !ok {
			return nil, notFound(n)
		}
		d := description{LoadBalancerName: n}
		for _, k := range l.tagOrder {
			d.Tags = append(d.Tags, tag{Key: k, Value: l.tags[k]})
		}
		r.Descriptions = append(r.Descriptions, d)
	}
	return r, nil
}
