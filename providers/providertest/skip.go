package providertest

import (
	"strings"
	"testing"
)

// skipped reports whether t is a rule that skip names, and the reason. A
// key names a rule below its suite as -run would match it: its group and
// rule names joined by "/", spaces as written (go test shows them as
// underscores).
func skipped(t *testing.T, skip map[string]string) (string, bool) {
	for rule, why := range skip {
		if strings.HasSuffix(t.Name(), "/"+strings.ReplaceAll(rule, " ", "_")) {
			return "skipped by the harness: " + why, true
		}
	}
	return "", false
}
