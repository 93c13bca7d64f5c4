package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"github.com/convox-go/convox/providers"
)

// mode is what one run of the program does.
type mode string

const (
	modeDeploy   mode = "deploy"
	modeStatus   mode = "status"
	modeRollback mode = "rollback"
	modeDelete   mode = "delete"
	modeSetup    mode = "setup"
)

// settings is everything the program reads from its flags and environment.
type settings struct {
	mode mode

	app, image          string
	process             string
	count, port         int
	healthPath, path    string
	env                 envFlag
	timeout, pollPeriod time.Duration

	cluster, executionRole  string
	subnets, securityGroups listFlag
	publicIP                bool
	loadBalancer, domain    string
	table, namespace        string
	registryEndpoint        string
}

// usageError is a malformed command line or setting: exit code 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{fmt.Sprintf(format, args...)}
}

// envFallbacks maps flags to the environment variables read when the flag
// is not given. The CONVOX_AWS_ names are those of the example CLI's AWS
// rack, so one environment serves both programs.
var envFallbacks = []struct{ flag, env string }{
	{"app", "CONVOX_APP"},
	{"image", "CONVOX_IMAGE"},
	{"cluster", "CONVOX_AWS_CLUSTER"},
	{"subnets", "CONVOX_AWS_SUBNETS"},
	{"security-groups", "CONVOX_AWS_SECURITY_GROUPS"},
	{"public-ip", "CONVOX_AWS_PUBLIC_IP"},
	{"execution-role", "CONVOX_AWS_EXECUTION_ROLE"},
	{"load-balancer", "CONVOX_AWS_LOAD_BALANCER"},
	{"domain", "CONVOX_AWS_DOMAIN"},
	{"table", "CONVOX_AWS_TABLE"},
	{"namespace", "CONVOX_AWS_NAMESPACE"},
	{"registry-endpoint", "CONVOX_AWS_REGISTRY_ENDPOINT"},
}

const usageHeader = `Usage: aws [flags]

Deploys an image from ECR to ECS on Fargate behind a shared application load
balancer, with logs in CloudWatch Logs and release history in DynamoDB.
With -status, -rollback or -delete it does that instead of deploying.
Credentials, region and endpoints come from the standard AWS configuration
(AWS_PROFILE, AWS_REGION, environment credentials, SSO, AWS_ENDPOINT_URL and
AWS_ENDPOINT_URL_<SERVICE>). A flag not given falls back to the environment
variable shown in brackets.

Exit codes: 0 ok; 1 the deploy failed (and was rolled back) or another
operation failed; 2 usage error.

Flags:
`

// parseSettings reads the command line, falling back to getenv for the
// flags of envFallbacks. Help goes to out and returns flag.ErrHelp.
func parseSettings(args []string, getenv func(string) string, out io.Writer) (settings, error) {
	s := settings{
		process: "web", count: 2, port: 8080, healthPath: "/",
		timeout: 10 * time.Minute, pollPeriod: time.Second,
		cluster: "convox", loadBalancer: "convox", table: "convox",
	}
	fs := flag.NewFlagSet("aws", flag.ContinueOnError)
	fs.SetOutput(out)
	var status, rollback, del, setup bool
	fs.StringVar(&s.app, "app", "", "the app to deploy (created when missing)")
	fs.StringVar(&s.image, "image", "", "the image to deploy, already pushed to ECR: `REPO:TAG`, REPO@sha256:..., or the full ECR URI")
	fs.StringVar(&s.process, "process", s.process, "the process name")
	fs.IntVar(&s.count, "count", s.count, "how many tasks of the process run")
	fs.IntVar(&s.port, "port", s.port, "the port the process listens on (also given to it as $PORT)")
	fs.StringVar(&s.healthPath, "health-path", s.healthPath, "the load balancer's health check `PATH`")
	fs.StringVar(&s.path, "path", "", "route requests under this `PATH` prefix on the load balancer's DNS name; without it the process answers on its host under -domain")
	fs.Var(&s.env, "env", "set an environment variable of the process (`KEY=VALUE`; repeatable)")
	fs.DurationVar(&s.timeout, "timeout", s.timeout, "how long a deploy may take before it is rolled back")
	fs.DurationVar(&s.pollPeriod, "poll-interval", s.pollPeriod, "the first interval between observations of a deploy; it backs off to ten times this")
	fs.StringVar(&s.cluster, "cluster", s.cluster, "the ECS cluster (created when missing)")
	fs.Var(&s.subnets, "subnets", "comma-separated `IDS` of the subnets of the tasks (and of the load balancer, when it is created)")
	fs.Var(&s.securityGroups, "security-groups", "comma-separated `IDS` of the security groups of the tasks and of a new load balancer")
	fs.BoolVar(&s.publicIP, "public-ip", false, "give tasks public IP addresses (public subnets without a NAT gateway)")
	fs.StringVar(&s.executionRole, "execution-role", "", "`ARN` of the role ECS pulls images and writes logs with (required on AWS)")
	fs.StringVar(&s.loadBalancer, "load-balancer", s.loadBalancer, "name or ARN of the shared application load balancer (a name is created when missing)")
	fs.StringVar(&s.domain, "domain", "", "the process answers on the host <app>-<process>.`DOMAIN`")
	fs.StringVar(&s.table, "table", s.table, "the DynamoDB table of apps and release history (created by -setup)")
	fs.StringVar(&s.namespace, "namespace", "", "this rack's namespace: its documents in the table (default \"convox\"), its target group names and its log groups (scoped when set)")
	fs.StringVar(&s.registryEndpoint, "registry-endpoint", "", "send this program's registry data-path requests for the ECR host to this `URL` instead (a pull-through mirror, an emulator); see the package documentation")
	fs.BoolVar(&status, "status", false, "print the app, its endpoint and its releases instead of deploying")
	fs.BoolVar(&rollback, "rollback", false, "roll the app back to its last healthy release instead of deploying")
	fs.BoolVar(&del, "delete", false, "delete the app (its services, routes, logs and history) instead of deploying")
	fs.BoolVar(&setup, "setup", false, "create the DynamoDB table when missing, once, instead of deploying (needs dynamodb:DescribeTable and dynamodb:CreateTable, which deploys do not)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usageHeader)
		fs.PrintDefaults()
	}
	for _, f := range envFallbacks {
		if fl := fs.Lookup(f.flag); fl != nil {
			fl.Usage += " [$" + f.env + "]"
		}
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return s, err
		}
		return s, &usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return s, usagef("unexpected argument %q: every setting is a flag (see -help)", fs.Arg(0))
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	for _, f := range envFallbacks {
		if v := getenv(f.env); v != "" && !given[f.flag] {
			if err := fs.Set(f.flag, v); err != nil {
				return s, usagef("%s=%q: %v", f.env, v, err)
			}
		}
	}

	s.mode = modeDeploy
	n := 0
	for _, m := range []struct {
		on bool
		m  mode
	}{{status, modeStatus}, {rollback, modeRollback}, {del, modeDelete}, {setup, modeSetup}} {
		if m.on {
			s.mode, n = m.m, n+1
		}
	}
	if n > 1 {
		return s, usagef("-status, -rollback, -delete and -setup exclude each other")
	}
	return s, s.validate()
}

// validate checks what can be checked before any call.
func (s *settings) validate() error {
	if s.mode == modeSetup {
		return nil // only the table matters
	}
	if s.app == "" {
		return usagef("no app: give -app NAME or set CONVOX_APP")
	}
	if err := providers.ValidateName("app", s.app, providers.MaxAppName); err != nil {
		return usagef("-app: %v", err)
	}
	if err := providers.ValidateNamespace(s.namespace); err != nil {
		return usagef("-namespace: %v", err)
	}
	if s.registryEndpoint != "" {
		u, err := url.Parse(s.registryEndpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.Trim(u.Path, "/") != "" || u.RawQuery != "" {
			return usagef("-registry-endpoint %q: want http(s)://HOST[:PORT], with no path", s.registryEndpoint)
		}
	}
	if s.mode != modeDeploy && s.mode != modeRollback {
		return nil
	}
	if s.timeout <= 0 || s.pollPeriod <= 0 {
		return usagef("-timeout and -poll-interval must be positive")
	}
	if len(s.subnets) == 0 {
		return usagef("no subnets: ECS on Fargate needs at least one; give -subnets or set CONVOX_AWS_SUBNETS")
	}
	if s.mode == modeRollback {
		return nil
	}
	if s.image == "" {
		return usagef("no image: give -image REPO:TAG or set CONVOX_IMAGE (push it to ECR first)")
	}
	if err := providers.ValidateName("process", s.process, providers.MaxProcessName); err != nil {
		return usagef("-process: %v", err)
	}
	if s.count < 0 {
		return usagef("-count %d: want 0 or more", s.count)
	}
	if s.port < 1 || s.port > 65535 {
		return usagef("-port %d: want 1 to 65535", s.port)
	}
	if s.domain == "" && s.path == "" {
		return usagef("no route: give -domain (the process answers on <app>-<process>.DOMAIN) or -path (a path prefix on the load balancer's DNS name); the load balancer is shared and tells apps apart by host or path")
	}
	if s.path != "" && !strings.HasPrefix(s.path, "/") {
		return usagef("-path %q: want a path starting with /", s.path)
	}
	return nil
}

// listFlag is a comma-separated list.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(v string) error {
	*l = nil
	for _, f := range strings.Split(v, ",") {
		if f = strings.TrimSpace(f); f != "" {
			*l = append(*l, f)
		}
	}
	return nil
}

// envFlag collects repeated KEY=VALUE flags.
type envFlag map[string]string

func (e *envFlag) String() string {
	var keys []string
	for k := range *e {
		keys = append(keys, k)
	}
	return strings.Join(keys, ",")
}

func (e *envFlag) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("%q: want KEY=VALUE", v)
	}
	if *e == nil {
		*e = envFlag{}
	}
	(*e)[k] = val
	return nil
}
