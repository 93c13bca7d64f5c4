package albbalancer

import (
	"hash/fnv"
	"strconv"
	"strings"
	"time"

	"github.com/convox-go/convox/internal/awshealth"
	"github.com/convox-go/convox/providers"
)

// defaultDeregistered is the deregistration delay of a RouteSpec that
// sets none. Zero fields of its HealthCheck take
// providers.DefaultHealthCheck.
const defaultDeregistered = 30 * time.Second

// route is a validated RouteSpec.
type route struct {
	id       string // providers.ScopedName(Options.Namespace, app, process): the route ID and the default target group name
	app      string
	process  string
	port     int32
	protocol providers.Protocol
	host     string   // "" when the rule has no host condition
	prefix   string   // path prefix without trailing slash; "" when the rule has no path condition
	patterns []string // path-pattern values; empty when the rule has no path condition
	cert     string
	health   awshealth.Settings
	dereg    int32 // deregistration delay in seconds
}

// normalize validates spec and fills the defaults. Every failure matches
// providers.ErrInvalid.
func (b *Balancer) normalize(spec providers.RouteSpec) (route, error) {
	if err := providers.ValidateAppProcess(spec.App, spec.Process); err != nil {
		return route{}, err
	}
	if err := providers.ValidateNamespace(b.opts.Namespace); err != nil {
		return route{}, err
	}
	r := route{id: providers.ScopedName(b.opts.Namespace, spec.App, spec.Process), app: spec.App, process: spec.Process}
	if spec.Port < 1 || spec.Port > 65535 {
		return route{}, providers.Invalidf("route %s: port %d is outside 1-65535", r.id, spec.Port)
	}
	r.port = int32(spec.Port)
	switch spec.Protocol {
	case "", providers.HTTP:
		r.protocol = providers.HTTP
	case providers.HTTPS, providers.HTTP2:
		r.protocol = spec.Protocol
	default:
		return route{}, providers.Invalidf("route %s: unknown protocol %q (use http, https or http2)", r.id, spec.Protocol)
	}
	r.cert = spec.Certificate
	if r.cert != "" && !strings.HasPrefix(r.cert, "arn:") {
		return route{}, providers.Invalidf("route %s: certificate %q is not an ARN", r.id, r.cert)
	}
	if r.cert != "" && r.protocol == providers.HTTP {
		return route{}, providers.Invalidf("route %s: a certificate needs protocol https or http2", r.id)
	}
	host, err := normalizeHost(spec.Host)
	if err != nil {
		return route{}, providers.Invalidf("route %s: %v", r.id, err)
	}
	r.host = host
	if spec.Path != "" {
		prefix, patterns, err := normalizePath(spec.Path)
		if err != nil {
			return route{}, providers.Invalidf("route %s: %v", r.id, err)
		}
		r.prefix = prefix
		if prefix != "" || host == "" {
			r.patterns = patterns
		}
	}
	if r.host == "" && spec.Path == "" {
		if b.opts.Domain == "" {
			return route{}, providers.Invalidf("route %s has neither a host nor a path, and the balancer has no Domain for a default host", r.id)
		}
		r.host = providers.ResourceName(r.app, r.process, "") + "." + b.opts.Domain
	}

	h, err := awshealth.Check(r.id, spec.Health, awshealth.TargetGroup)
	if err != nil {
		return route{}, err
	}
	r.health = h

	if spec.DeregistrationDelay < 0 {
		return route{}, providers.Invalidf("route %s: negative deregistration delay %v", r.id, spec.DeregistrationDelay)
	}
	dereg := awshealth.Seconds(cmpOr(spec.DeregistrationDelay, defaultDeregistered))
	if dereg > 3600 {
		return route{}, providers.Invalidf("route %s: deregistration delay %v is longer than 3600s", r.id, spec.DeregistrationDelay)
	}
	r.dereg = int32(dereg)
	return r, nil
}

// cmpOr returns v, or def when v is zero.
func cmpOr[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// normalizeHost lowercases and checks a host-header value: letters,
// digits, hyphens, dots and the wildcards * and ?, at most 128 characters.
func normalizeHost(h string) (string, error) {
	h = strings.ToLower(h)
	if len(h) > 128 {
		return "", providers.Invalidf("host %q is longer than 128 characters", h)
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '*' || c == '?') {
			return "", providers.Invalidf("host %q: character %q is not allowed", h, c)
		}
	}
	if strings.HasPrefix(h, ".") || strings.HasSuffix(h, ".") || strings.Contains(h, "..") {
		return "", providers.Invalidf("host %q is not a host name", h)
	}
	return h, nil
}

// normalizePath turns a path prefix into the rule's path patterns: "/api"
// (or "/api/") matches "/api" and everything under it, "/" matches every
// path, and a path holding a wildcard (* or ?) is used as given. prefix is
// the path without its trailing slash ("" for "/"), or the part before the
// first wildcard.
func normalizePath(p string) (prefix string, patterns []string, err error) {
	if !strings.HasPrefix(p, "/") {
		return "", nil, providers.Invalidf("path %q must start with /", p)
	}
	if len(p) > 120 {
		return "", nil, providers.Invalidf("path %q is longer than 120 characters", p)
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("_-.$/~@:+*?", c) >= 0) {
			return "", nil, providers.Invalidf("path %q: character %q is not allowed", p, c)
		}
	}
	if i := strings.IndexAny(p, "*?"); i >= 0 {
		return strings.TrimSuffix(p[:i], "/"), []string{p}, nil
	}
	prefix = strings.TrimRight(p, "/")
	if prefix == "" {
		return "", []string{"/*"}, nil
	}
	return prefix, []string{prefix, prefix + "/*"}, nil
}

// Rule priorities. ELBv2 evaluates a listener's rules in ascending
// priority (1-50000), so more specific rules get lower numbers: rules with
// a host and a path first, then host-only rules (exact hosts before
// wildcards), then path-only rules; among rules with a path, longer
// prefixes first. Within its band a route starts at a slot derived from a
// hash of its ID, so it gets the same priority every time it is created
// on a listener where that slot is free, and probes upwards otherwise.
const (
	bandWidth     = 250
	pathBands     = 64 // prefix lengths 0..63+
	hostPathFirst = 1
	hostOnlyFirst = hostPathFirst + pathBands*bandWidth // 16001
	wildcardFirst = hostOnlyFirst + 8000                // 24001
	pathOnlyFirst = hostOnlyFirst + 16000               // 32001
	pathOnlyLast  = pathOnlyFirst + pathBands*bandWidth - 1
)

// bands returns the preferred priority range of r and the wider range of
// its class, used when the preferred one is full.
func (r route) bands() (lo, hi, classLo, classHi int) {
	pathBand := func(first int) (int, int) {
		idx := pathBands - 1 - min(len(r.prefix), pathBands-1)
		lo := first + idx*bandWidth
		return lo, lo + bandWidth - 1
	}
	switch {
	case r.host != "" && len(r.patterns) > 0:
		lo, hi = pathBand(hostPathFirst)
		return lo, hi, hostPathFirst, hostOnlyFirst - 1
	case r.host != "":
		if strings.ContainsAny(r.host, "*?") {
			return wildcardFirst, pathOnlyFirst - 1, hostOnlyFirst, pathOnlyFirst - 1
		}
		return hostOnlyFirst, wildcardFirst - 1, hostOnlyFirst, pathOnlyFirst - 1
	default:
		lo, hi = pathBand(pathOnlyFirst)
		return lo, hi, pathOnlyFirst, pathOnlyLast
	}
}

// inBand reports whether priority p is in r's preferred band.
func (r route) inBand(p int) bool {
	lo, hi, _, _ := r.bands()
	return p >= lo && p <= hi
}

// allocate returns a free priority for r, given the priorities in use.
func (r route) allocate(used map[int]bool) (int, bool) {
	lo, hi, classLo, classHi := r.bands()
	h := fnv.New32a()
	h.Write([]byte(r.id))
	seed := int(h.Sum32() % uint32(hi-lo+1))
	for _, span := range [][2]int{{lo, hi}, {classLo, classHi}} {
		width := span[1] - span[0] + 1
		for i := range width {
			p := span[0] + (seed+i)%width
			if !used[p] {
				return p, true
			}
		}
	}
	return 0, false
}

// endpoint is the URL clients reach the route at.
func (b *Balancer) endpoint(r route, dns string) string {
	scheme, port, def := "http", b.opts.HTTPPort, 80
	if r.protocol != providers.HTTP {
		scheme, port, def = "https", b.opts.HTTPSPort, 443
	}
	host := r.host
	if host == "" {
		host = dns
	}
	if port != def {
		host += ":" + strconv.Itoa(port)
	}
	return scheme + "://" + host + r.prefix + "/"
}
