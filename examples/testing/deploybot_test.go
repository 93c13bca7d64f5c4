package main

import (
	"strings"
	"testing"
	"testing/synctest"

	"github.com/convox-go/convox"
	"github.com/convox-go/convox/providers/fake"
)

func TestShipItReportsTheRollback(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := fake.New(nil)
		c, _ := convox.New(convox.Rack{Registry: r.Registry(), Scheduler: r.Scheduler(), Balancer: r.Balancer(), Logs: r.Logs(), Store: r.Store()}, nil)
		c.CreateApp(t.Context(), "web", nil)
		r.Push("web", "v1", &fake.ImageConfig{Entrypoint: []string{"/server"}})
		c.App("web").Deploy(t.Context(), convox.ReleaseSpec{Image: "web:v1", Processes: []convox.Process{{Name: "web", Count: 1, Port: 80}}}, nil)
		r.CrashLoop(r.Push("web", "v2", &fake.ImageConfig{Entrypoint: []string{"/broken"}}).Digest) // the injected fault

		got := ShipIt(t.Context(), c, "web", "web:v2")
		if !strings.Contains(got, "R2 failed") || !strings.Contains(got, "R1 is serving again") {
			t.Errorf("ShipIt = %q, want the failure and the rollback", got)
		}
	})
}
