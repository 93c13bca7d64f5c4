package local

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/convox-go/convox/providers"
)

// A long drain delay, which no test waits for: a connection that must
// survive the drain outlives it only if nothing cuts it early.
const longDrain = time.Hour

// A short drain delay, for the tests where the delay must pass.
const shortDrain = 50 * time.Millisecond

// twoSets starts a route whose default set serves old (websockets and
// server-sent events) and whose set "new" serves new, weighted 100 and 0.
func twoSets(t *testing.T, delay time.Duration, old http.HandlerFunc) (*Balancer, providers.Route, *backend) {
	t.Helper()
	b, route, oldBackend := proxyRoute(t, delay, old)
	next, err := b.EnsureTargetSet(t.Context(), route.ID, "new")
	if err != nil {
		t.Fatal(err)
	}
	b.register([]string{next.Target}, newBackend(t, "new", nil).addr(), true)
	return b, route, oldBackend
}

// oldHandler serves a websocket echo on /ws and server-sent events from
// next on /events.
func oldHandler(next <-chan string) http.HandlerFunc {
	sse := sseBackend(next)
	return func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ws":
			echoWebsocket(w, r)
		case "/events":
			sse(w, r)
		default:
			fmt.Fprint(w, "old")
		}
	}
}

// wsClosed waits until the websocket is closed under the client (its read
// fails without a close frame from the application).
func wsClosed(t *testing.T, ws *websocket.Conn) {
	t.Helper()
	_, _, err := ws.Read(t.Context())
	if err == nil {
		t.Fatal("read a message from a websocket that should be closed")
	}
	if t.Context().Err() != nil {
		t.Fatal("the websocket was not closed before the test's deadline")
	}
}

func TestBalancerWeightChangeDrainsWebsockets(t *testing.T) {
	tests := []struct {
		name  string
		delay time.Duration
		// clientCloses ends the websocket by the client after the weight
		// change; otherwise the test waits for the drain delay to close it.
		clientCloses bool
		// weightBack gives the old set its weight back right after the
		// change, and waits past the delay.
		weightBack bool
	}{
		{"a websocket goes on after its set loses its weight and closes normally", longDrain, true, false},
		{"a websocket still open when the drain delay ends is closed", shortDrain, false, false},
		{"a set weighted again before the delay ends keeps its websockets", shortDrain, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, route, _ := twoSets(t, tt.delay, oldHandler(nil))
			ws := dialWebsocket(t, route.Endpoint+"/ws")
			if got := wsRoundTrip(t, ws, "before"); got != "echo: before" {
				t.Fatalf("echo before the change = %q", got)
			}
			if err := b.SetWeights(t.Context(), route.ID, map[string]int{"new": 100}); err != nil {
				t.Fatal(err)
			}
			if got := get(route.Endpoint); got != "new" {
				t.Errorf("a new request after the weight change answered %q, want new", got)
			}
			if tt.weightBack {
				if err := b.SetWeights(t.Context(), route.ID, map[string]int{"": 100}); err != nil {
					t.Fatal(err)
				}
				// Past the delay: a drain still pending would have cut the
				// websocket by now.
				time.Sleep(10 * shortDrain)
			}
			if !tt.clientCloses {
				wsClosed(t, ws)
				return
			}
			for i := range 3 {
				msg := fmt.Sprintf("during the drain %d", i)
				if got := wsRoundTrip(t, ws, msg); got != "echo: "+msg {
					t.Errorf("echo during the drain = %q, want %q", got, "echo: "+msg)
				}
			}
			if err := ws.Close(websocket.StatusNormalClosure, "done"); err != nil {
				t.Errorf("the client's normal close: %v", err)
			}
		})
	}
}

func TestBalancerDeregisterDrainsLongConnections(t *testing.T) {
	tests := []struct {
		name  string
		delay time.Duration
		// run opens a long connection, calls drain to start the target's
		// deregistration, uses the connection while the target drains and
		// ends it; drained is closed once deregister has returned.
		run func(t *testing.T, endpoint string, next chan<- string, drain func(), drained <-chan struct{})
	}{
		{"a websocket goes on while its target drains, which ends when it closes", longDrain,
			func(t *testing.T, endpoint string, _ chan<- string, drain func(), drained <-chan struct{}) {
				ws := dialWebsocket(t, endpoint+"/ws")
				wsRoundTrip(t, ws, "open")
				drain()
				for i := range 3 {
					msg := fmt.Sprintf("during the drain %d", i)
					if got := wsRoundTrip(t, ws, msg); got != "echo: "+msg {
						t.Errorf("echo during the drain = %q, want %q", got, "echo: "+msg)
					}
				}
				notYet(t, drained)
				if err := ws.Close(websocket.StatusNormalClosure, "done"); err != nil {
					t.Errorf("the client's normal close: %v", err)
				}
				<-drained
			}},
		{"a websocket still open when the drain delay ends is closed", shortDrain,
			func(t *testing.T, endpoint string, _ chan<- string, drain func(), drained <-chan struct{}) {
				ws := dialWebsocket(t, endpoint+"/ws")
				wsRoundTrip(t, ws, "open")
				drain()
				<-drained
				wsClosed(t, ws)
			}},
		{"server-sent events go on while their target drains, which ends with the stream", longDrain,
			func(t *testing.T, endpoint string, next chan<- string, drain func(), drained <-chan struct{}) {
				resp, err := http.Get(endpoint + "/events")
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				br := bufio.NewReader(resp.Body)
				drain()
				for i := range 3 {
					want := fmt.Sprintf("event %d", i)
					next <- want
					if got, err := readEvent(br); err != nil || got != want {
						t.Fatalf("event %d during the drain = %q, %v; want %q", i, got, err, want)
					}
				}
				notYet(t, drained)
				close(next)
				if rest, err := io.ReadAll(br); err != nil || len(rest) != 0 {
					t.Errorf("the end of the stream: %q, %v; want a clean end", rest, err)
				}
				<-drained
			}},
		{"server-sent events still streaming when the drain delay ends are cut", shortDrain,
			func(t *testing.T, endpoint string, next chan<- string, drain func(), drained <-chan struct{}) {
				resp, err := http.Get(endpoint + "/events")
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				drain()
				<-drained
				if _, err := io.ReadAll(resp.Body); !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Errorf("reading the cut stream: %v, want io.ErrUnexpectedEOF (not a clean end)", err)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			next := make(chan string)
			b, route, old := proxyRoute(t, tt.delay, oldHandler(next))
			drained := make(chan struct{})
			start := make(chan struct{})
			go func() {
				<-start
				b.deregister(t.Context(), []string{route.Binding.Target}, old.addr())
				close(drained)
			}()
			drain := func() {
				close(start)
				waitTargetState(t, b, route.ID, old.addr(), providers.TargetDraining)
			}
			tt.run(t, route.Endpoint, next, drain, drained)
		})
	}
}

// notYet fails the test if ch is closed.
func notYet(t *testing.T, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
		t.Fatal("deregister returned while the long connection was still open")
	default:
	}
}
