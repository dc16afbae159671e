package reboundhttp_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestStandardLibraryOnly keeps reboundhttp free of third-party imports: its
// only non-standard dependency is rebound itself.
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
		if p != "github.com/rebound-go/rebound" && p != "github.com/rebound-go/rebound/reboundhttp" {
			t.Errorf("non-standard dependency %s", p)
		}
	}
}
