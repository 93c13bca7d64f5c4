// Command app is the quickstart's web app: an HTTP server on
// 127.0.0.1:$PORT that answers "hello from $VERSION" on / and "ok" on
// /health. Built with STARTUP_CHECK=database in its image config, it fails
// its startup check and exits like an app whose database is unreachable.
package main

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	if os.Getenv("STARTUP_CHECK") == "database" {
		fmt.Println("connecting to database at db.internal:5432")
		fmt.Println("panic: dial tcp db.internal:5432: connection refused")
		os.Exit(2)
	}
	version := os.Getenv("VERSION")
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintf(w, "hello from %s\n", version) })
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
		log.Fatal(err)
	}
}
