package providertest_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// The suites are tested by mutation: each mutant below is a provider that
// breaks one rule of its contract, and TestMutants runs the suite on it
// and requires the suite to fail, with a failure of the rule named in the
// table. A mutant the suite lets through is a rule the suite lacks.
//
// A suite fails its *testing.T, and a failed subtest fails its parents,
// so each mutant runs in a process of its own: TestMutants starts this
// test binary again, running only TestMutant with mutantEnv naming the
// mutant, and reads which rules failed from its verbose output. The test
// binary is the one under test, so -race carries over.

// mutantEnv names the mutant TestMutant runs.
const mutantEnv = "PROVIDERTEST_MUTANT"

// mutant is a provider that breaks one rule.
type mutant struct {
	// name is the subtest name: short, in kebab case.
	name string
	// iface is the interface (or optional capability) whose rule it
	// breaks.
	iface string
	// caughtBy is the full name, under the suite, of the rule that must
	// fail: "<group>/<rule>", as the suite names it.
	caughtBy string
	// suite runs the conformance suite on the mutant.
	suite func(t *testing.T)
}

// allMutants returns the mutants of every interface.
func allMutants() []mutant {
	var all []mutant
	for _, ms := range [][]mutant{storeMutants(), logsMutants(), registryMutants(), balancerMutants(), schedulerMutants()} {
		all = append(all, ms...)
	}
	return all
}

func TestMutantsAreWellFormed(t *testing.T) {
	seen := map[string]bool{}
	for _, m := range allMutants() {
		if seen[m.name] {
			t.Errorf("mutant %q is listed twice", m.name)
		}
		seen[m.name] = true
		if m.iface == "" || m.caughtBy == "" || !strings.Contains(m.caughtBy, "/") || m.suite == nil {
			t.Errorf("mutant %q: want an interface, a rule of the form group/rule and a suite", m.name)
		}
	}
	if n := len(seen); n < 40 {
		t.Errorf("%d mutants, want at least 40", n)
	}
}

// TestMutationScoreIsDocumented checks that the mutation score in the
// package doc counts the mutants of the table: TestMutants checks that
// each is caught.
func TestMutationScoreIsDocumented(t *testing.T) {
	doc, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^//\s+(\w+)\s+(\d+/\d+)`).FindAllStringSubmatch(string(doc), -1) {
		documented[m[1]] = m[2]
	}
	counts := map[string]int{}
	for _, m := range allMutants() {
		counts[m.iface]++
		counts["total"]++
	}
	want := map[string]string{}
	for iface, n := range counts {
		want[iface] = fmt.Sprintf("%d/%d", n, n)
	}
	if diff := cmp.Diff(want, documented); diff != "" {
		t.Errorf("mutation score in the package doc (-mutants +documented):\n%s", diff)
	}
}

// TestMutants runs the suite on every mutant, each in a process of its
// own, and requires the rule the mutant breaks to fail.
func TestMutants(t *testing.T) {
	if os.Getenv(mutantEnv) != "" {
		t.Skip("running in a mutant's process")
	}
	for _, m := range allMutants() {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			group, _, _ := strings.Cut(m.caughtBy, "/")
			failed, out := runMutant(t, m.name, group)
			want := testName(m.caughtBy)
			caught := slices.ContainsFunc(failed, func(name string) bool {
				return name == want || strings.HasPrefix(name, want+"/")
			})
			if !caught {
				t.Errorf("the %s suite let mutant %q through: rule %q did not fail; failed rules: %q\noutput:\n%s", m.iface, m.name, m.caughtBy, failed, tail(out, 60))
			}
		})
	}
}

// TestMutant runs the suite on the mutant mutantEnv names; TestMutants
// starts it in a process of its own.
func TestMutant(t *testing.T) {
	name := os.Getenv(mutantEnv)
	if name == "" {
		t.Skip("runs only in a process started by TestMutants")
	}
	i := slices.IndexFunc(allMutants(), func(m mutant) bool { return m.name == name })
	if i < 0 {
		t.Fatalf("no mutant %q", name)
	}
	allMutants()[i].suite(t)
}

var failLine = regexp.MustCompile(`^\s*--- FAIL: TestMutant/(\S+) \(`)

// runMutant runs the suite on the mutant in a new process and returns the
// names of the subtests that failed, under TestMutant, and the output.
// The process runs the rule group the mutant breaks a rule of (TestControls
// runs every group on the unmutated providers). A process that passes
// fails t.
func runMutant(t *testing.T, name, group string) ([]string, []byte) {
	t.Helper()
	args := []string{"-test.run=^TestMutant$/^" + regexp.QuoteMeta(group) + "$", "-test.v", "-test.count=1", "-test.timeout=2m"}
	if testing.Short() {
		args = append(args, "-test.short")
	}
	cmd := exec.CommandContext(t.Context(), os.Args[0], args...)
	cmd.Env = append(os.Environ(), mutantEnv+"="+name)
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("the suite passed on mutant %q\noutput:\n%s", name, tail(out, 30))
	}
	if exit := (*exec.ExitError)(nil); !errors.As(err, &exit) {
		t.Fatalf("running the suite on mutant %q: %v", name, err)
	}
	var failed []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		if m := failLine.FindStringSubmatch(sc.Text()); m != nil {
			failed = append(failed, m[1])
		}
	}
	return failed, out
}

// testName is the name the testing package gives a subtest named name.
func testName(name string) string {
	return strings.ReplaceAll(name, " ", "_")
}

// tail returns the last n lines of out.
func tail(out []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("[%d lines omitted]", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}
