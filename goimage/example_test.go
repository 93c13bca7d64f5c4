package goimage_test

import (
	"context"
	"fmt"
	"log"

	"github.com/convox-go/convox/goimage"
)

// Build a Go program into an image with its environment, command and
// labels set; push it with the local rack's Registry().PushImage, or with
// go-containerregistry's remote.Write to any registry.
func ExampleBuild() {
	img, err := goimage.Build(context.Background(), "./cmd/web", &goimage.Config{
		Env:    []string{"MODE=production"},
		Cmd:    []string{"--listen", ":8080"},
		Labels: map[string]string{"org.opencontainers.image.revision": "abc123"},
	})
	if err != nil {
		log.Fatal(err)
	}
	digest, err := img.Digest()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(digest)
}

// Configure makes a variant of an image without rebuilding it: only its
// configuration changes, its layers are shared.
func ExampleConfigure() {
	base, err := goimage.FromBinary([]byte("a static binary"), nil)
	if err != nil {
		log.Fatal(err)
	}
	v2, err := goimage.Configure(base, goimage.Config{Env: []string{"VERSION=v2"}, Entrypoint: []string{goimage.BinaryPath, "serve"}})
	if err != nil {
		log.Fatal(err)
	}
	cfg, err := v2.ConfigFile()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(cfg.Config.Entrypoint, cfg.Config.Env)
	// Output:
	// [/app/server serve] [PATH=/app:/usr/local/bin:/usr/bin:/bin VERSION=v2]
}
