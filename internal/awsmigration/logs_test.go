package awsmigration_test

import (
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/google/go-cmp/cmp"

	"github.com/convox-go/convox"
	"github.com/convox-go/convox/internal/awstest"
	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/cwlogs"
	"github.com/convox-go/convox/providers/fake"
	"github.com/convox-go/convox/providers/kinesislogs"
	"github.com/convox-go/convox/providers/logtee"
)

// platformLines reads the platform lines of an app through the root's Logs,
// failing the test on an error or on an entry ID seen twice.
func platformLines(t *testing.T, c *convox.Client, app string, q convox.LogQuery) []string {
	t.Helper()
	q.Stream = providers.StreamPlatform
	var msgs []string
	seen := map[string]bool{}
	for e, err := range c.App(app).Logs(t.Context(), q) {
		if err != nil {
			t.Fatalf("Logs(%+v): %v", q, err)
		}
		if seen[e.ID] {
			t.Errorf("entry %s (%q) read twice", e.ID, e.Message)
		}
		seen[e.ID] = true
		msgs = append(msgs, e.Message)
	}
	return msgs
}

// backendLines reads the platform entries of an app straight from a logs
// provider, by message, with their IDs.
func backendLines(t *testing.T, l providers.Logs, app string) (msgs []string, ids map[string]string) {
	t.Helper()
	ids = map[string]string{}
	token := ""
	for {
		page, err := l.Read(t.Context(), providers.LogQuery{App: app, Stream: providers.StreamPlatform}, token)
		if err != nil {
			t.Fatalf("Read: %v", err)
		}
		for _, e := range page.Entries {
			msgs = append(msgs, e.Message)
			ids[e.Message] = e.ID
		}
		if page.Next == "" {
			return msgs, ids
		}
		token = page.Next
	}
}

// TestLogsMigrationKinesisToCloudWatch moves an ECS app's logs from
// Kinesis to CloudWatch Logs, both on the emulator, through a logtee.Tee:
// the app logs to Kinesis; the rack gains the tee and the app switches to
// it (writes to both, reads across both); the process running the
// migration crashes and a new one continues it with a new tee of the same
// Since, which the caller persisted; the tee cuts over (writes to
// CloudWatch only); reads through the root span both backends in order,
// each line once; finally the app switches to CloudWatch Logs and a
// rollback logs there.
func TestLogsMigrationKinesisToCloudWatch(t *testing.T) {
	h := newHarness(t)
	ctx := t.Context()
	app := awstest.Name(t, "logs")
	stream := awstest.Name(t, "stream")
	if err := kinesislogs.EnsureStream(ctx, kinesis.NewFromConfig(h.cfg), stream, nil); err != nil {
		t.Fatalf("EnsureStream: %v", err)
	}
	fr := fake.New(nil)
	for _, v := range []string{"v1", "v2", "v3", "v4"} {
		fr.Push(app, v, &fake.ImageConfig{Env: []string{"VERSION=" + v}})
	}

	// A process of the migration: new providers over the same endpoints.
	type process struct {
		c        *convox.Client
		kin, cw  providers.Logs
		tee      *logtee.Tee
		backends []convox.Named[providers.Logs]
	}
	start := func(tee *logtee.Options) *process {
		p := &process{
			kin: kinesislogs.New(kinesis.NewFromConfig(h.cfg), stream, nil),
			// The emulator matches a filter pattern's raw text: filter on the client.
			cw: cwlogs.New(cloudwatchlogs.NewFromConfig(h.cfg), &cwlogs.Options{NoFilterPattern: true}),
		}
		p.backends = []convox.Named[providers.Logs]{{Name: "kinesis", Provider: p.kin}, {Name: "cloudwatch", Provider: p.cw}}
		if tee != nil {
			p.tee = logtee.New(p.kin, p.cw, tee)
			p.backends = append(p.backends, convox.Named[providers.Logs]{Name: "migrating", Provider: p.tee})
		}
		p.c = h.client(convox.Rack{Registry: fr.Registry(), LogBackends: p.backends}, nil)
		return p
	}
	deploy := func(p *process, v string) {
		t.Helper()
		spec := convox.ReleaseSpec{Image: app + ":" + v}
		if v == "v1" {
			spec.Processes = []convox.Process{{Name: "worker", Count: 1, Command: []string{"/app/worker"}}}
		}
		if _, err := p.c.App(app).Deploy(ctx, spec, nil); err != nil {
			t.Fatalf("deploy %s: %v", v, err)
		}
	}

	// Before the migration: the app logs to Kinesis.
	p := start(nil)
	if _, err := p.c.CreateApp(ctx, app, &convox.AppSpec{Logs: "kinesis"}); err != nil {
		t.Fatal(err)
	}
	deploy(p, "v1")

	// 1. The tee from now on; the caller keeps Since (CloudWatch keeps
	// milliseconds) for a process that continues the migration.
	since := time.Now().UTC().Truncate(time.Millisecond)
	p = start(&logtee.Options{Since: since})
	if err := p.c.App(app).SwitchLogs(ctx, "migrating"); err != nil {
		t.Fatal(err)
	}
	deploy(p, "v2")

	// The process crashes; a new one continues with a tee of the same Since.
	p = start(&logtee.Options{Since: since})
	deploy(p, "v3")
	// 2. Cut over: new lines go to CloudWatch Logs only.
	p.tee.Cutover()
	deploy(p, "v4")

	all := []string{
		"promoting R1", "R1 is active and healthy",
		"promoting R2 (active: R1)", "R2 is active and healthy",
		"promoting R3 (active: R2)", "R3 is active and healthy",
		"promoting R4 (active: R3)", "R4 is active and healthy",
	}
	tests := []struct {
		name string
		q    convox.LogQuery
		want []string
	}{
		{"every line once, in order, across both backends", convox.LogQuery{}, all},
		{"a filter applies on both sides of Since", convox.LogQuery{Filter: "R1"}, []string{"promoting R1", "R1 is active and healthy", "promoting R2 (active: R1)"}},
		{"a release's lines from before Since", convox.LogQuery{Release: "R1"}, all[:2]},
		{"a release's lines from after Since", convox.LogQuery{Release: "R3"}, all[4:6]},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, platformLines(t, p.c, app, tc.q)); diff != "" {
				t.Errorf("lines through the tee (-want +got):\n%s", diff)
			}
		})
	}

	kin, kinIDs := backendLines(t, p.kin, app)
	cw, cwIDs := backendLines(t, p.cw, app)
	t.Run("Kinesis holds the lines up to the cutover, CloudWatch those from Since", func(t *testing.T) {
		if diff := cmp.Diff(all[:6], kin); diff != "" {
			t.Errorf("Kinesis (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(all[2:], cw); diff != "" {
			t.Errorf("CloudWatch Logs (-want +got):\n%s", diff)
		}
	})
	t.Run("a teed line has one ID in both backends", func(t *testing.T) {
		for _, m := range all[2:6] {
			if kinIDs[m] == "" || kinIDs[m] != cwIDs[m] {
				t.Errorf("%q: ID %q in Kinesis, %q in CloudWatch Logs", m, kinIDs[m], cwIDs[m])
			}
		}
	})
	t.Logf("through the tee: %d lines; Kinesis holds %d, CloudWatch Logs %d, %d of them in both", len(all), len(kin), len(cw), len(all[2:6]))

	// 3. Drop the tee: the app reads and writes CloudWatch Logs only, which
	// holds every line since Since; a rollback logs there.
	if err := p.c.App(app).SwitchLogs(ctx, "cloudwatch"); err != nil {
		t.Fatal(err)
	}
	rb, err := p.c.App(app).Rollback(ctx, convox.Previous(), nil)
	if err != nil {
		t.Fatalf("rollback after the migration: %v", err)
	}
	after := append(all[2:], "promoting R5 (active: R4)", "R5 is active and healthy")
	got := platformLines(t, p.c, app, convox.LogQuery{})
	if diff := cmp.Diff(after, got); diff != "" {
		t.Errorf("lines after switching to CloudWatch Logs and rolling back to %s as %s (-want +got):\n%s", rb.Parent, rb.ID, diff)
	}
	if kinNow, _ := backendLines(t, p.kin, app); len(kinNow) != len(kin) {
		t.Errorf("Kinesis holds %d lines after the switch, want the %d it held", len(kinNow), len(kin))
	}
	t.Logf("after the switch: CloudWatch Logs serves %d lines (rollback %s of %s included); the %d lines before Since stay in Kinesis until its retention ends", len(got), rb.ID, rb.Parent, len(all[:2]))
}
