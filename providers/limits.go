package providers

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Input bounds. Every rule about the size or shape of what a caller asks
// a rack to run lives in this file, and both the root and every scheduler
// check it with the same functions (Desired.Validate, RunSpec.Validate,
// Process.Validate, HealthCheck.Validate, Limits.ValidateEnv,
// LogQuery.Validate), so bad input is refused with ErrInvalid before any
// store write or provider side effect, and identically everywhere.
//
// Limits holds the bounds that depend on where the processes run; the
// constants below are the same on every backend.

// Fixed bounds, the same on every backend.
const (
	// MaxPort is the highest process port; ports are 1 to MaxPort, and 0
	// means a process serves no traffic.
	MaxPort = 65535
	// MaxCPU bounds Process.CPU in CPU units (64 vCPUs).
	MaxCPU = 64 * 1024
	// MaxMemory bounds Process.Memory in MiB (1 TiB).
	MaxMemory = 1 << 20
	// MaxEnvName is the longest environment variable name in bytes.
	MaxEnvName = 255
	// MaxCommandArgs and MaxCommandBytes bound a process command: the
	// number of arguments and their total size in bytes.
	MaxCommandArgs  = 1024
	MaxCommandBytes = 64 << 10
	// MaxHealthPath is the longest health-check path in bytes (the ALB
	// limit).
	MaxHealthPath = 1024
	// MaxHealthGrace, MaxHealthInterval and MaxHealthTimeout bound the
	// timing fields of a HealthCheck; MaxHealthThreshold bounds Healthy
	// and Unhealthy (the ELB limits: intervals up to 5 minutes, timeouts
	// up to 2, thresholds up to 10).
	MaxHealthGrace     = time.Hour
	MaxHealthInterval  = 5 * time.Minute
	MaxHealthTimeout   = 2 * time.Minute
	MaxHealthThreshold = 10
	// MaxIDLen bounds Desired.Release, Desired.Token, RunSpec.Release and
	// RunSpec.Token (the ECS tag-value limit).
	MaxIDLen = 256
	// MaxLogFilter is the longest LogQuery.Filter in bytes (the CloudWatch
	// Logs filter-pattern limit); MaxLogField bounds LogQuery.Process,
	// Release and Stream (the log-stream-name limit); MaxLogLimit bounds
	// LogQuery.Limit (the GetLogEvents page limit).
	MaxLogFilter = 1024
	MaxLogField  = 512
	MaxLogLimit  = 10000
	// MaxDescription is the longest release description in bytes.
	MaxDescription = 1024
	// MaxImageRef is the longest image reference in bytes.
	MaxImageRef = 1024
	// MaxRouteField bounds a route's host, path and certificate in bytes;
	// MaxDeregistrationDelay bounds how long removed targets drain (the
	// ELB limit).
	MaxRouteField          = 1024
	MaxDeregistrationDelay = time.Hour
)

// Default Limits: what one machine running the local rack comfortably
// holds. See Limits for what each bounds.
const (
	DefaultMaxCount     = 64
	DefaultMaxTasks     = 256
	DefaultMaxProcesses = 32
	DefaultMaxEnvVars   = 1000
	DefaultMaxEnvValue  = 32 << 10
	DefaultMaxEnvBytes  = 64 << 10
)

// Limits are the bounds of a scheduler, which depend on where processes
// run: a rack-wide maximum the root and the scheduler both enforce. Zero
// fields take the defaults (see WithDefaults). A scheduler reports its own
// by implementing Bounded; the root uses DefaultLimits for one that does not.
type Limits struct {
	// MaxCount bounds Process.Count, the instances of one process type.
	// Default DefaultMaxCount (64); never more than math.MaxInt32, which
	// every backend stores.
	MaxCount int
	// MaxTasks bounds the instances of all process types of a release
	// together. Default DefaultMaxTasks (256), and at least MaxCount.
	MaxTasks int
	// MaxProcesses bounds the process types of a release. Default
	// DefaultMaxProcesses (32).
	MaxProcesses int
	// MaxEnvVars bounds the environment variables of a release, plain and
	// secret together. Default DefaultMaxEnvVars (1000).
	MaxEnvVars int
	// MaxEnvValue bounds one variable's value in bytes. Default
	// DefaultMaxEnvValue (32 KiB).
	MaxEnvValue int
	// MaxEnvBytes bounds the whole environment in bytes, counted as
	// exec does: "NAME=value" plus a terminator for each variable, secret
	// ones included. Default DefaultMaxEnvBytes (64 KiB).
	MaxEnvBytes int
}

// Bounded is implemented by schedulers that report their Limits. The root
// validates a release against the Limits of the app's scheduler before it
// writes anything; the scheduler validates Desired and RunSpec against
// the same Limits on entry.
type Bounded interface {
	// Limits returns the scheduler's bounds, defaults filled in.
	Limits() Limits
}

// DefaultLimits returns the default bounds (the zero Limits with defaults).
func DefaultLimits() Limits { return Limits{}.WithDefaults() }

// WithDefaults returns l with zero or negative fields set to their
// defaults and MaxCount capped at math.MaxInt32.
func (l Limits) WithDefaults() Limits {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&l.MaxCount, DefaultMaxCount)
	l.MaxCount = min(l.MaxCount, math.MaxInt32)
	def(&l.MaxTasks, max(DefaultMaxTasks, l.MaxCount))
	def(&l.MaxProcesses, DefaultMaxProcesses)
	def(&l.MaxEnvVars, DefaultMaxEnvVars)
	def(&l.MaxEnvValue, DefaultMaxEnvValue)
	def(&l.MaxEnvBytes, DefaultMaxEnvBytes)
	return l
}

// ValidateEnvName checks an environment variable name: 1 to MaxEnvName
// bytes of ASCII letters, digits and underscores, not starting with a
// digit (the portable POSIX form; it never contains "=" or NUL).
func ValidateEnvName(name string) error {
	if name == "" {
		return Invalidf("an environment variable has an empty name")
	}
	if len(name) > MaxEnvName {
		return Invalidf("environment variable name %.32q… is %d bytes; the limit is %d", name, len(name), MaxEnvName)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || i > 0 && c >= '0' && c <= '9') {
			return Invalidf("environment variable name %q: use letters, digits and underscores, not starting with a digit", name)
		}
	}
	return nil
}

// ValidateEnv checks an environment against l: at most MaxEnvVars
// variables, each with a valid name (ValidateEnvName) and a value of at
// most MaxEnvValue bytes without NUL, all together at most MaxEnvBytes.
// Errors name the variable, never its value.
func (l Limits) ValidateEnv(env map[string]string) error {
	l = l.WithDefaults()
	if len(env) > l.MaxEnvVars {
		return Invalidf("the environment has %d variables; the limit is %d", len(env), l.MaxEnvVars)
	}
	total := 0
	for _, k := range slices.Sorted(maps.Keys(env)) {
		v := env[k]
		if err := ValidateEnvName(k); err != nil {
			return err
		}
		if len(v) > l.MaxEnvValue {
			return Invalidf("environment variable %s: its value is %d bytes; the limit is %d", k, len(v), l.MaxEnvValue)
		}
		if strings.IndexByte(v, 0) >= 0 {
			return Invalidf("environment variable %s: its value contains a NUL byte", k)
		}
		total += len(k) + len(v) + 2
	}
	if total > l.MaxEnvBytes {
		return Invalidf("the environment is %d bytes; the limit is %d", total, l.MaxEnvBytes)
	}
	return nil
}

// validateSecretNames checks that every secret name is a variable of env
// or has a reference in refs, that no name is in both, and that every
// reference is of a secret name. It returns env and refs in one map, for
// the size checks of Limits.ValidateEnv.
func validateSecretNames(env, refs map[string]string, secret []string) (map[string]string, error) {
	for _, k := range secret {
		_, inEnv := env[k]
		_, inRefs := refs[k]
		if !inEnv && !inRefs {
			return nil, Invalidf("secret %q is not a variable of the environment", k)
		}
	}
	if len(refs) == 0 {
		return env, nil
	}
	all := maps.Clone(env)
	if all == nil {
		all = map[string]string{}
	}
	for _, k := range slices.Sorted(maps.Keys(refs)) {
		if !slices.Contains(secret, k) {
			return nil, Invalidf("variable %q has a secret reference but is not secret", k)
		}
		if _, ok := env[k]; ok {
			return nil, Invalidf("secret %q has both a value and a reference", k)
		}
		if refs[k] == "" {
			return nil, Invalidf("secret %q has an empty reference", k)
		}
		all[k] = refs[k]
	}
	return all, nil
}

// ValidateCommand checks a command: at most MaxCommandArgs arguments of at
// most MaxCommandBytes together, none containing a NUL byte.
func ValidateCommand(cmd []string) error {
	if len(cmd) > MaxCommandArgs {
		return Invalidf("the command has %d arguments; the limit is %d", len(cmd), MaxCommandArgs)
	}
	n := 0
	for i, a := range cmd {
		if strings.IndexByte(a, 0) >= 0 {
			return Invalidf("command argument %d contains a NUL byte", i)
		}
		n += len(a) + 1
	}
	if n > MaxCommandBytes {
		return Invalidf("the command is %d bytes; the limit is %d", n, MaxCommandBytes)
	}
	return nil
}

// healthPathChar reports whether c may appear in a health-check path:
// ASCII letters, digits, "-._~" (unreserved), "!$&'()*+,;=" (sub-delims),
// ":" and "/". This leaves out "@", "%", "?", "#", spaces, control and
// non-ASCII bytes, so a path can never name a host, a user, a query or an
// escape that a backend would read differently.
func healthPathChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("-._~!$&'()*+,;=:/", c) >= 0
}

// ValidateHealthPath checks a health-check path: empty (the provider's
// default, "/"), or an absolute path of at most MaxHealthPath bytes that
// starts with a single "/" and holds only the characters healthPathChar
// allows (no "@", scheme, host, query, fragment or percent escape).
func ValidateHealthPath(path string) error {
	if path == "" {
		return nil
	}
	if len(path) > MaxHealthPath {
		return Invalidf("health path is %d bytes; the limit is %d", len(path), MaxHealthPath)
	}
	if path[0] != '/' {
		return Invalidf("health path %q must be an absolute path starting with \"/\"", path)
	}
	if strings.HasPrefix(path, "//") {
		return Invalidf("health path %q must not start with \"//\" (it would name a host)", path)
	}
	for i := 0; i < len(path); i++ {
		if !healthPathChar(path[i]) {
			return Invalidf("health path %q: character %q at %d is not allowed; use letters, digits and -._~!$&'()*+,;=:/", path, path[i], i)
		}
	}
	return nil
}

// Validate checks the health check: a valid path (ValidateHealthPath),
// Grace, Interval and Timeout between zero and MaxHealthGrace,
// MaxHealthInterval and MaxHealthTimeout, and Healthy and Unhealthy
// between zero and MaxHealthThreshold. Zero fields take the provider's
// defaults.
func (h HealthCheck) Validate() error {
	if err := ValidateHealthPath(h.Path); err != nil {
		return err
	}
	for _, d := range []struct {
		name  string
		v, mx time.Duration
	}{{"grace", h.Grace, MaxHealthGrace}, {"interval", h.Interval, MaxHealthInterval}, {"timeout", h.Timeout, MaxHealthTimeout}} {
		if d.v < 0 || d.v > d.mx {
			return Invalidf("health %s %s is not between 0 and %s", d.name, d.v, d.mx)
		}
	}
	for _, n := range []struct {
		name string
		v    int
	}{{"healthy threshold", h.Healthy}, {"unhealthy threshold", h.Unhealthy}} {
		if n.v < 0 || n.v > MaxHealthThreshold {
			return Invalidf("health %s %d is not between 0 and %d", n.name, n.v, MaxHealthThreshold)
		}
	}
	return nil
}

// Validate checks one process against l: its name (ValidateName with
// MaxProcessName), Count between 0 and l.MaxCount, CPU and Memory between
// 0 and MaxCPU and MaxMemory, Port between 0 and MaxPort, its command
// (ValidateCommand) and its health check (HealthCheck.Validate).
func (p Process) Validate(l Limits) error {
	l = l.WithDefaults()
	if err := ValidateName("process", p.Name, MaxProcessName); err != nil {
		return err
	}
	if p.Count < 0 || p.Count > l.MaxCount {
		return Invalidf("process %s: count %d is not between 0 and %d, the rack's limit", p.Name, p.Count, l.MaxCount)
	}
	return p.validateSettings()
}

// validateSettings checks everything of a process but its name and count.
func (p Process) validateSettings() error {
	switch {
	case p.CPU < 0 || p.CPU > MaxCPU:
		return Invalidf("process %s: cpu %d is not between 0 and %d", p.Name, p.CPU, MaxCPU)
	case p.Memory < 0 || p.Memory > MaxMemory:
		return Invalidf("process %s: memory %d MiB is not between 0 and %d", p.Name, p.Memory, MaxMemory)
	case p.Port < 0 || p.Port > MaxPort:
		return Invalidf("process %s: port %d is not 0 (no traffic) or 1 to %d", p.Name, p.Port, MaxPort)
	}
	if err := ValidateCommand(p.Command); err != nil {
		return fmt.Errorf("process %s: %w", p.Name, err)
	}
	if err := p.Health.Validate(); err != nil {
		return fmt.Errorf("process %s: %w", p.Name, err)
	}
	return nil
}

// ValidateFormation checks the processes of one app's release against l:
// at most l.MaxProcesses process types, each valid (Process.Validate) and
// listed once, with names that fit app's resource names
// (ValidateAppProcess), and at most l.MaxTasks instances together.
func (l Limits) ValidateFormation(app string, ps []Process) error {
	l = l.WithDefaults()
	if len(ps) > l.MaxProcesses {
		return Invalidf("the release has %d process types; the limit is %d", len(ps), l.MaxProcesses)
	}
	seen := make(map[string]bool, len(ps))
	total := 0
	for _, p := range ps {
		if err := ValidateAppProcess(app, p.Name); err != nil {
			return err
		}
		if seen[p.Name] {
			return Invalidf("process %q is listed twice", p.Name)
		}
		seen[p.Name] = true
		if err := p.Validate(l); err != nil {
			return err
		}
		total += p.Count // each at most MaxInt32, at most MaxProcesses of them: no overflow
	}
	if total > l.MaxTasks {
		return Invalidf("the release runs %d instances in all; the limit is %d", total, l.MaxTasks)
	}
	return nil
}

// validateID checks a release ID or token: at most MaxIDLen bytes without
// control characters.
func validateID(kind, id string) error {
	if len(id) > MaxIDLen {
		return Invalidf("%s is %d bytes; the limit is %d", kind, len(id), MaxIDLen)
	}
	for i := 0; i < len(id); i++ {
		if id[i] < ' ' || id[i] == 0x7f {
			return Invalidf("%s %q contains a control character", kind, id)
		}
	}
	return nil
}

// Validate checks what every scheduler requires of a desired state, with
// l's bounds: a valid app name, a release (validateID), a formation
// (Limits.ValidateFormation), an environment (Limits.ValidateEnv, references
// included) whose Secret names are all variables or references, and bindings that name processes of the
// formation with ports of 0 to MaxPort. A scheduler calls it first in
// Apply and Stage and adds its own checks (binding kinds, a pinned image)
// after it; the root checks a release with the same rules
// (Limits.ValidateFormation, Limits.ValidateEnv) before it writes it.
func (d Desired) Validate(l Limits) error {
	if err := ValidateName("app", d.App, MaxAppName); err != nil {
		return err
	}
	if d.Release == "" {
		return Invalidf("the desired state of app %s has no release", d.App)
	}
	if err := validateID("release", d.Release); err != nil {
		return err
	}
	if err := validateID("token", d.Token); err != nil {
		return err
	}
	if err := l.ValidateFormation(d.App, d.Processes); err != nil {
		return err
	}
	env, err := validateSecretNames(d.Env, d.SecretRefs, d.Secret)
	if err != nil {
		return err
	}
	if err := l.ValidateEnv(env); err != nil {
		return err
	}
	for name, bs := range d.Bindings {
		if !slices.ContainsFunc(d.Processes, func(p Process) bool { return p.Name == name }) {
			return Invalidf("bindings name process %q, which is not in the formation", name)
		}
		for _, b := range bs {
			if b.Port < 0 || b.Port > MaxPort {
				return Invalidf("process %s: binding port %d is not 0 or 1 to %d", name, b.Port, MaxPort)
			}
		}
	}
	return nil
}

// Validate checks what every scheduler requires of a one-off task, with
// l's bounds: valid app and process names (ValidateAppProcess), the
// process's settings (its Count is not used and not checked), release and
// token (validateID), the command (ValidateCommand) and the environment
// (Limits.ValidateEnv) whose Secret names are all variables. A
// scheduler calls it first in RunTask; the root calls it before RunTask.
func (r RunSpec) Validate(l Limits) error {
	if err := ValidateAppProcess(r.App, r.Process.Name); err != nil {
		return err
	}
	if err := r.Process.validateSettings(); err != nil {
		return err
	}
	if err := validateID("release", r.Release); err != nil {
		return err
	}
	if err := validateID("token", r.Token); err != nil {
		return err
	}
	if err := ValidateCommand(r.Command); err != nil {
		return err
	}
	env, err := validateSecretNames(r.Env, r.SecretRefs, r.Secret)
	if err != nil {
		return err
	}
	return l.ValidateEnv(env)
}

// Validate checks the sizes of a log query: Filter at most MaxLogFilter
// bytes; Process, Release and Stream at most MaxLogField; Limit between
// 0 and MaxLogLimit.
func (q LogQuery) Validate() error {
	if len(q.Filter) > MaxLogFilter {
		return Invalidf("log filter is %d bytes; the limit is %d", len(q.Filter), MaxLogFilter)
	}
	for _, f := range []struct{ name, v string }{{"process", q.Process}, {"release", q.Release}, {"stream", q.Stream}} {
		if len(f.v) > MaxLogField {
			return Invalidf("log %s is %d bytes; the limit is %d", f.name, len(f.v), MaxLogField)
		}
	}
	if q.Limit < 0 || q.Limit > MaxLogLimit {
		return Invalidf("log limit %d is not between 0 and %d", q.Limit, MaxLogLimit)
	}
	return nil
}

// ValidateDescription checks a release description: at most
// MaxDescription bytes of valid UTF-8.
func ValidateDescription(s string) error {
	if len(s) > MaxDescription {
		return Invalidf("the description is %d bytes; the limit is %d", len(s), MaxDescription)
	}
	if !utf8.ValidString(s) {
		return Invalidf("the description is not valid UTF-8")
	}
	return nil
}
