// Command server is the test app of package local: an HTTP server on
// 127.0.0.1:$PORT.
//
//	GET /        answers $MESSAGE ("hello" when unset)
//	GET /health  answers 200, or 500 when UNHEALTHY=1
//	GET /sleep   answers after the duration in ?d= (e.g. 300ms)
//
// With LISTEN_DELAY (a duration) it waits that long before it binds its
// port. With CRASH=1 it prints "panic: boom" and exits with status 2. With the
// arguments "echo word..." it prints the words and exits 0. On SIGTERM it
// finishes in-flight requests and exits 0.
package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "echo" {
		fmt.Println(strings.Join(os.Args[2:], " "))
		return
	}
	if os.Getenv("CRASH") == "1" {
		fmt.Println("panic: boom")
		os.Exit(2)
	}
	msg := os.Getenv("MESSAGE")
	if msg == "" {
		msg = "hello"
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, msg) })
	mux.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) {
		if os.Getenv("UNHEALTHY") == "1" {
			http.Error(w, "unhealthy", http.StatusInternalServerError)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/sleep", func(w http.ResponseWriter, r *http.Request) {
		d, _ := time.ParseDuration(r.URL.Query().Get("d"))
		time.Sleep(d)
		fmt.Fprintln(w, msg)
	})
	if d, _ := time.ParseDuration(os.Getenv("LISTEN_DELAY")); d > 0 {
		time.Sleep(d)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:"+os.Getenv("PORT"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println("listening on", ln.Addr())
	srv := &http.Server{Handler: mux}
	go func() {
		stop := make(chan os.Signal, 1)
		signal.Notify(stop, syscall.SIGTERM)
		<-stop
		fmt.Println("stopping")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}()
	if err := srv.Serve(ln); err != http.ErrServerClosed {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
