package reboundhttp_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestStandardLibraryOnly keeps reboundhttp free of third-party imports: its
// only non-standard dependencies are rebound itself and internal/redact,
// which is held to the standard library here too (go list -deps lists its
// imports as well).
func TestStandardLibraryOnly(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command")
	}
	out, err := exec.Command(gobin, "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, p := range strings.Fields(string(out)) {
		switch p {
		case "github.com/rebound-go/rebound", "github.com/rebound-go/rebound/reboundhttp",
			"github.com/rebound-go/rebound/internal/redact":
		default:
			t.Errorf("non-standard dependency %s", p)
		}
	}
}
