package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/convox-go/convox"

	"github.com/convox-go/convox/goimage"
	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/local"
)

// The proxy part drives one backend, the local rack's test app run by the
// rack's scheduler (GET / answers "hello"), with one load generator in four
// ways:
//
//   - direct: straight to the backend's address;
//   - reverseproxy: through a plain httputil.ReverseProxy served in this
//     process, its transport keeping as many idle connections per host as
//     the local balancer's;
//   - local: through the route of the local rack's balancer that the
//     deploy made (the real hot path: health checks, weights and draining
//     are all on);
//   - nginx: through nginx with one worker and upstream keep-alive, when
//     nginx is installed.
//
// The generator is wrk (one thread) when it is installed, otherwise a Go
// client with the same number of connections. Each measurement follows a
// warm-up run whose numbers are dropped.

// Load shape of the proxy part.
const (
	proxyConns       = 32 // connections kept busy by the generator
	proxyIdlePerHost = 256
	proxyDuration    = 5 * time.Second
	proxyShort       = time.Second
	proxyWarmup      = time.Second
	proxyRounds      = 3 // rounds of measurement per target (1 with -short)
)

// Goals of issue #21: the local balancer serves a fifth more than a plain
// ReverseProxy with a p99 latency no worse, and at least half of nginx's
// throughput.
const (
	goalLocalOverReverseProxy    = 1.2
	goalLocalOverNginx           = 0.5
	goalLocalOverReverseProxyP99 = 1.0
)

// loadResult is one measurement.
type loadResult struct {
	ok      int // requests answered 200
	failed  int // errors and other statuses
	elapsed time.Duration
	p99     time.Duration
}

func (r loadResult) rps() float64 { return float64(r.ok) / r.elapsed.Seconds() }

// generator drives load at a URL for a while.
type generator struct {
	about string
	run   func(ctx context.Context, url string, d time.Duration) (loadResult, error)
}

// proxyTarget is one way of reaching the backend.
type proxyTarget struct {
	name   string
	url    string
	rounds []loadResult
	res    loadResult // the round with the median requests/s
}

// median returns the result with the median requests/s (the lower middle
// one of an even number).
func median(rs []loadResult) loadResult {
	s := slices.Clone(rs)
	slices.SortFunc(s, func(a, b loadResult) int { return cmp.Compare(a.rps(), b.rps()) })
	return s[(len(s)-1)/2]
}

func runProxy(ctx context.Context, cfg config) error {
	d, rounds := proxyDuration, proxyRounds
	if cfg.short {
		d, rounds = proxyShort, 1
	}
	gen := pickGenerator()
	tmp, err := os.MkdirTemp("", "convox-bench-proxy-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	backend, localURL, closeRack, err := startLocalBackend(ctx, filepath.Join(tmp, "rack"))
	if err != nil {
		return err
	}
	defer closeRack()

	rpURL, closeRP, err := startReverseProxy(backend)
	if err != nil {
		return err
	}
	defer closeRP()

	targets := []*proxyTarget{
		{name: "direct", url: "http://" + backend + "/"},
		{name: "reverseproxy", url: rpURL + "/"},
		{name: "local", url: localURL + "/"},
	}
	nginxNote := ""
	if path, err := exec.LookPath("nginx"); err != nil {
		nginxNote = "nginx is not installed: its row and ratio are skipped"
	} else {
		nginxURL, stopNginx, err := startNginx(ctx, path, backend)
		if err != nil {
			return fmt.Errorf("nginx: %w", err)
		}
		defer stopNginx()
		targets = append(targets, &proxyTarget{name: "nginx", url: nginxURL + "/"})
	}

	fmt.Fprintf(cfg.out, "backend: the local rack's test app at %s (GET / answers \"hello\")\n", backend)
	fmt.Fprintf(cfg.out, "load: %s, %d connections, %d round(s) of %s per target after a %s warm-up; each row is the round with the median requests/s\n", gen.about, proxyConns, rounds, d, proxyWarmup)
	if nginxNote != "" {
		fmt.Fprintln(cfg.out, nginxNote)
	}
	for _, t := range targets {
		if _, err := gen.run(ctx, t.url, proxyWarmup); err != nil {
			return fmt.Errorf("%s: warm-up: %w", t.name, err)
		}
	}
	// Rounds interleave the targets, so that a change in the machine's
	// other load during the run weighs on all of them alike.
	prof := &roundProfiler{path: cfg.proxyProfile}
	defer prof.stop()
	for round := range rounds {
		for _, t := range targets {
			if t.name == "local" {
				if err := prof.start(); err != nil {
					return err
				}
			}
			res, err := gen.run(ctx, t.url, d)
			prof.stop()
			if err != nil {
				return fmt.Errorf("%s, round %d: %w", t.name, round+1, err)
			}
			if res.ok == 0 || res.failed > 0 {
				return fmt.Errorf("%s, round %d: %d of %d requests failed", t.name, round+1, res.failed, res.ok+res.failed)
			}
			t.rounds = append(t.rounds, res)
		}
	}
	prof.stop()
	for _, t := range targets {
		t.res = median(t.rounds)
	}

	tw := tabwriter.NewWriter(cfg.out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "target\trequests/s\tp99\trounds (requests/s)\tfailed\t")
	for _, t := range targets {
		var each []string
		failed := 0
		for _, r := range t.rounds {
			each = append(each, fmt.Sprintf("%.0f", r.rps()))
			failed += r.failed
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%s\t%s\t%d\t\n", t.name, t.res.rps(), fmtLatency(t.res.p99), strings.Join(each, " "), failed)
	}
	tw.Flush()

	by := map[string]*proxyTarget{}
	for _, t := range targets {
		by[t.name] = t
	}
	// A ratio compares the two targets round by round (measurements run
	// seconds apart) and reports the median round.
	ratioOf := func(a, b string, of func(loadResult) float64) (float64, string) {
		var rs []float64
		for i := range by[a].rounds {
			rs = append(rs, of(by[a].rounds[i])/of(by[b].rounds[i]))
		}
		each := make([]string, len(rs))
		for i, r := range rs {
			each[i] = fmt.Sprintf("%.2f", r)
		}
		slices.Sort(rs)
		return rs[(len(rs)-1)/2], strings.Join(each, " ")
	}
	ratio := func(a, b string) (float64, string) { return ratioOf(a, b, loadResult.rps) }
	p99 := func(r loadResult) float64 { return float64(r.p99) }
	pairs := [][2]string{{"reverseproxy", "direct"}, {"local", "direct"}, {"reverseproxy", "nginx"}, {"local", "reverseproxy"}, {"local", "nginx"}}
	for _, p := range pairs {
		if by[p[0]] == nil || by[p[1]] == nil {
			continue
		}
		r, each := ratio(p[0], p[1])
		fmt.Fprintf(cfg.out, "ratio %s/%s requests/s = %.2f (rounds: %s)\n", p[0], p[1], r, each)
	}
	rp99, each := ratioOf("local", "reverseproxy", p99)
	fmt.Fprintf(cfg.out, "ratio local/reverseproxy p99 latency = %.2f (rounds: %s)\n", rp99, each)
	r, _ := ratio("local", "reverseproxy")
	goal(cfg.out, "local/reverseproxy requests/s", r, goalLocalOverReverseProxy)
	goalAtMost(cfg.out, "local/reverseproxy p99 latency", rp99, goalLocalOverReverseProxyP99)
	if by["nginx"] != nil {
		r, _ := ratio("local", "nginx")
		goal(cfg.out, "local/nginx requests/s", r, goalLocalOverNginx)
	}
	return nil
}

// fmtLatency prints a latency with two decimals in a readable unit.
func fmtLatency(d time.Duration) string {
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.2fs", d.Seconds())
	case d >= time.Millisecond:
		return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.0fµs", float64(d)/float64(time.Microsecond))
}

// startLocalBackend opens a local rack in dir and deploys the test app
// through the root API as one web process. It returns the process's
// address, the route's endpoint and a function closing the rack.
func startLocalBackend(ctx context.Context, dir string) (string, string, func(), error) {
	src, err := testAppDir()
	if err != nil {
		return "", "", nil, err
	}
	img, err := goimage.Build(ctx, src, nil)
	if err != nil {
		return "", "", nil, err
	}
	rack, err := local.Open(dir, &local.Options{StopGrace: 2 * time.Second})
	if err != nil {
		return "", "", nil, err
	}
	closeRack := func() { rack.Close() }
	fail := func(err error) (string, string, func(), error) {
		closeRack()
		return "", "", nil, err
	}
	if _, err := rack.Registry().PushImage(ctx, "backend", "v1", img); err != nil {
		return fail(err)
	}
	c, err := convox.New(convox.Rack{
		Registry: rack.Registry(), Scheduler: rack.Scheduler(), Balancer: rack.Balancer(),
		Logs: rack.Logs(), Store: rack.Store(),
	}, &convox.Options{PollInterval: 100 * time.Millisecond, MaxPollInterval: 500 * time.Millisecond, Timeout: time.Minute})
	if err != nil {
		return fail(err)
	}
	if _, err := c.CreateApp(ctx, "backend", nil); err != nil {
		return fail(err)
	}
	app := c.App("backend")
	if _, err := app.Deploy(ctx, convox.ReleaseSpec{
		Image:     "backend:v1",
		Processes: []convox.Process{{Name: "web", Count: 1, Port: 8080, Health: providers.HealthCheck{Path: "/health"}}},
	}, nil); err != nil {
		return fail(err)
	}
	a, err := app.Get(ctx)
	if err != nil {
		return fail(err)
	}
	var tasks []providers.Task
	for t, err := range app.Tasks(ctx) {
		if err != nil {
			return fail(err)
		}
		tasks = append(tasks, t)
	}
	if len(tasks) == 0 || tasks[0].Address == "" {
		return fail(fmt.Errorf("the deployed backend reports no task address: %+v", tasks))
	}
	return tasks[0].Address, a.Endpoints["web"], closeRack, nil
}

// testAppDir finds the source of the local rack's test app in the module
// that holds the working directory.
func testAppDir() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("find the module: go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("run the benchmark from inside the convox module (go run ./bench)")
	}
	dir := filepath.Join(filepath.Dir(gomod), "providers", "local", "testdata", "server")
	if _, err := os.Stat(filepath.Join(dir, "main.go")); err != nil {
		return "", fmt.Errorf("the test app's source: %w", err)
	}
	return dir, nil
}

// startReverseProxy serves a plain httputil.ReverseProxy to backend on
// 127.0.0.1 and returns its URL and a function stopping it.
func startReverseProxy(backend string) (string, func(), error) {
	target := &url.URL{Scheme: "http", Host: backend}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	tr.MaxIdleConnsPerHost = proxyIdlePerHost
	rp := &httputil.ReverseProxy{
		Rewrite:   func(pr *httputil.ProxyRequest) { pr.SetURL(target); pr.SetXForwarded() },
		Transport: tr,
		// Requests the generator abandons at the end of a run are not news.
		ErrorLog: log.New(io.Discard, "", 0),
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: rp, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	return "http://" + ln.Addr().String(), func() { srv.Close(); tr.CloseIdleConnections() }, nil
}

// nginxConf runs one worker in the foreground on 127.0.0.1, proxying to
// the backend over kept-alive connections, with every file under its
// prefix directory.
const nginxConf = `daemon off;
worker_processes 1;
pid nginx.pid;
error_log error.log warn;
events { worker_connections 1024; }
http {
	access_log off;
	client_body_temp_path tmp/body;
	proxy_temp_path tmp/proxy;
	fastcgi_temp_path tmp/fastcgi;
	uwsgi_temp_path tmp/uwsgi;
	scgi_temp_path tmp/scgi;
	upstream backend {
		server %s;
		keepalive 64;
	}
	server {
		listen %s;
		location / {
			proxy_pass http://backend;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
		}
	}
}
`

// startNginx starts nginx with one worker in front of backend and returns
// its URL and a function stopping it (which also removes its files).
func startNginx(ctx context.Context, path, backend string) (string, func(), error) {
	dir, err := os.MkdirTemp("", "convox-bench-nginx-")
	if err != nil {
		return "", nil, err
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(dir)
		}
	}()
	// nginx started as root runs its worker as an unprivileged user, which
	// must reach the prefix directory.
	if err := os.Chmod(dir, 0o755); err != nil {
		return "", nil, err
	}
	if err := os.Mkdir(filepath.Join(dir, "tmp"), 0o755); err != nil {
		return "", nil, err
	}
	addr, err := freeAddr()
	if err != nil {
		return "", nil, err
	}
	conf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(conf, fmt.Appendf(nil, nginxConf, backend, addr), 0o644); err != nil {
		return "", nil, err
	}
	cmd := exec.Command(path, "-p", dir+"/", "-c", conf, "-e", filepath.Join(dir, "error.log"))
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	// Its own process group, so that a forced stop reaches the worker too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		cmd.Process.Signal(os.Interrupt) // SIGINT: fast shutdown
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
		os.RemoveAll(dir)
	}
	u := "http://" + addr
	deadline := time.Now().Add(5 * time.Second)
	for {
		select {
		case err := <-exited:
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			return "", nil, fmt.Errorf("nginx exited: %v\n%s%s", err, out.String(), log)
		default:
		}
		if resp, err := http.Get(u + "/"); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				ok = true
				return u, stop, nil
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			stop()
			return "", nil, fmt.Errorf("nginx did not answer on %s within 5s\n%s", addr, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// freeAddr returns a 127.0.0.1 address with a port nobody listens on now.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// roundProfiler writes a CPU profile of each measured round of the local
// balancer, to path.1, path.2, ...; `go tool pprof` merges the files it is
// given.
type roundProfiler struct {
	path  string
	round int
	f     *os.File
}

// start begins profiling a round; it does nothing without a path.
func (p *roundProfiler) start() error {
	if p.path == "" {
		return nil
	}
	p.round++
	f, err := os.OpenFile(fmt.Sprintf("%s.%d", p.path, p.round), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("CPU profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return fmt.Errorf("CPU profile: %w", err)
	}
	p.f = f
	return nil
}

// stop ends the round being profiled, if any.
func (p *roundProfiler) stop() {
	if p.f == nil {
		return
	}
	pprof.StopCPUProfile()
	p.f.Close()
	p.f = nil
}
