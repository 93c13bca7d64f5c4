package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// pickGenerator returns wrk when it is installed, otherwise the Go client.
func pickGenerator() generator {
	if path, err := exec.LookPath("wrk"); err == nil {
		return generator{about: "wrk (1 thread)", run: func(ctx context.Context, url string, d time.Duration) (loadResult, error) {
			return runWrk(ctx, path, url, d)
		}}
	}
	return generator{about: "Go client (wrk is not installed)", run: runGoLoad}
}

// runGoLoad keeps proxyConns requests in flight at url for d, each
// connection kept alive, and measures every request.
func runGoLoad(ctx context.Context, url string, d time.Duration) (loadResult, error) {
	tr := &http.Transport{
		Proxy:               nil,
		MaxIdleConnsPerHost: proxyConns,
		MaxConnsPerHost:     proxyConns,
		DisableCompression:  true,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	type worker struct {
		ok, failed int
		lat        []time.Duration
	}
	workers := make([]worker, proxyConns)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range workers {
		w := &workers[i]
		wg.Go(func() {
			for ctx.Err() == nil {
				t0 := time.Now()
				ok := get(ctx, client, url)
				if ctx.Err() != nil {
					return // cut off by the end of the run: not counted
				}
				if !ok {
					w.failed++
					continue
				}
				w.ok++
				w.lat = append(w.lat, time.Since(t0))
			}
		})
	}
	wg.Wait()
	res := loadResult{elapsed: time.Since(start)}
	var lat []time.Duration
	for _, w := range workers {
		res.ok += w.ok
		res.failed += w.failed
		lat = append(lat, w.lat...)
	}
	res.p99 = percentile(lat, 0.99)
	return res, nil
}

// get GETs url and reports whether it answered 200 with its whole body.
func get(ctx context.Context, c *http.Client, url string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false
	}
	resp, err := c.Do(req)
	if err != nil {
		return false
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return err == nil && resp.StatusCode == http.StatusOK
}

// percentile returns the q-th quantile (0 < q ≤ 1) of ds by nearest rank.
func percentile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	i := int(math.Ceil(q*float64(len(ds)))) - 1
	return ds[max(i, 0)]
}

// runWrk runs wrk with one thread and proxyConns connections at url for d
// (rounded up to whole seconds, wrk's unit) and reads its report.
func runWrk(ctx context.Context, path, url string, d time.Duration) (loadResult, error) {
	secs := max(int(math.Ceil(d.Seconds())), 1)
	cmd := exec.CommandContext(ctx, path, "-t1", "-c"+strconv.Itoa(proxyConns), "-d"+strconv.Itoa(secs)+"s", "--timeout", "10s", "--latency", url)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return loadResult{}, fmt.Errorf("wrk: %w\n%s", err, out)
	}
	return parseWrk(string(out))
}

var (
	wrkTotal  = regexp.MustCompile(`^\s*(\d+) requests in ([\d.]+)(us|ms|s|m),`)
	wrkP99    = regexp.MustCompile(`^\s*99%\s+([\d.]+)(us|ms|s|m)\s*$`)
	wrkNon2xx = regexp.MustCompile(`^\s*Non-2xx or 3xx responses: (\d+)`)
	wrkSocket = regexp.MustCompile(`^\s*Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
)

// parseWrk reads the numbers of a wrk --latency report.
func parseWrk(report string) (loadResult, error) {
	var res loadResult
	total, non2xx, sawTotal, sawP99 := 0, 0, false, false
	sc := bufio.NewScanner(strings.NewReader(report))
	for sc.Scan() {
		line := sc.Text()
		if m := wrkTotal.FindStringSubmatch(line); m != nil {
			total, _ = strconv.Atoi(m[1])
			res.elapsed = wrkDuration(m[2], m[3])
			sawTotal = true
		}
		if m := wrkP99.FindStringSubmatch(line); m != nil {
			res.p99 = wrkDuration(m[1], m[2])
			sawP99 = true
		}
		if m := wrkNon2xx.FindStringSubmatch(line); m != nil {
			non2xx, _ = strconv.Atoi(m[1])
			res.failed += non2xx
		}
		if m := wrkSocket.FindStringSubmatch(line); m != nil {
			for _, s := range m[1:] {
				n, _ := strconv.Atoi(s)
				res.failed += n
			}
		}
	}
	if !sawTotal || !sawP99 || res.elapsed <= 0 {
		return res, fmt.Errorf("unreadable wrk report:\n%s", report)
	}
	// wrk counts responses of every status in its total; socket errors
	// are requests that got no response and are not in it.
	res.ok = max(total-non2xx, 0)
	return res, nil
}

func wrkDuration(num, unit string) time.Duration {
	f, _ := strconv.ParseFloat(num, 64)
	scale := map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second, "m": time.Minute}[unit]
	return time.Duration(f * float64(scale))
}
