// Command app is a demo web app for the convox CLI: an HTTP server on
// 127.0.0.1:$PORT that answers "$GREETING from $VERSION" on / (defaults
// "hello" and "v1") and "ok" on /health. With CRASH=1 in its environment it
// exits at once, like an app whose configuration is broken, so a deploy of
// it fails and is rolled back.
//
// It doubles as its own one-off tasks:
//
//	server env NAME   prints the variable's value (exit 1 when unset)
//	server exit CODE  prints a line and exits with CODE
package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) > 1 {
		os.Exit(task(os.Args[1:]))
	}
	if os.Getenv("CRASH") == "1" {
		fmt.Println("CRASH=1: refusing to start")
		os.Exit(1)
	}
	greeting, version := getenv("GREETING", "hello"), getenv("VERSION", "v1")
	mux := http.NewServeMux()
	mux.HandleFunc("/{$}", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintf(w, "%s from %s\n", greeting, version) })
	mux.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	srv := &http.Server{Addr: "127.0.0.1:" + os.Getenv("PORT"), Handler: mux, ReadHeaderTimeout: 5 * time.Second}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(shutdown)
	}()
	fmt.Printf("%s listening on %s\n", version, srv.Addr)
	if err := srv.ListenAndServe(); err != http.ErrServerClosed {
		fmt.Println(err)
		os.Exit(1)
	}
}

// task runs a one-off task and returns its exit code.
func task(args []string) int {
	switch {
	case len(args) == 2 && args[0] == "env":
		v, ok := os.LookupEnv(args[1])
		if !ok {
			fmt.Printf("%s is not set\n", args[1])
			return 1
		}
		fmt.Println(v)
		return 0
	case len(args) == 2 && args[0] == "exit":
		code, err := strconv.Atoi(args[1])
		if err != nil {
			fmt.Printf("exit %s: not a number\n", args[1])
			return 2
		}
		fmt.Printf("exiting with %d\n", code)
		return code
	}
	fmt.Println("usage: server [env NAME | exit CODE]")
	return 2
}

func getenv(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
