//go:build linux

package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rebound-go/rebound/internal/readonly"
)

// A healthy state on a read-only file system: run refuses it saying what
// is wrong, never "delete it"; status shows it, opened read-only.
func TestReadOnlyState(t *testing.T) {
	srv, hits := countingServer(t)
	dir := t.TempDir()
	m := filepath.Join(dir, "m.jsonl")
	lines := `{"id":"a","url":"` + srv.URL + `/a"}` + "\n" + `{"id":"b","url":"` + srv.URL + `/missing"}` + "\n"
	if err := os.WriteFile(m, []byte(lines), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := cliRun("run", m, "--quiet"); code != ExitFailed {
		t.Fatalf("first run: exit %d, want 1 (one dead item): %s", code, errOut)
	}
	view, reason := readonly.View(t, filepath.Join(dir, ".rebound"))
	state := filepath.Join(view, "m.db")

	code, _, errOut := cliRun("run", m, "--quiet", "--retry-dead", "--state", state)
	if code != ExitUsage || hits.Load() != 2 {
		t.Fatalf("run on a read-only state: exit %d, %d requests; want 2 and nothing sent", code, hits.Load())
	}
	if !strings.Contains(errOut, reason) || !strings.Contains(errOut, "intact") || strings.Contains(errOut, "delete") || strings.Contains(errOut, "unusable") {
		t.Fatalf("run on a read-only state: stderr %q; want %q, progress intact, no delete advice", errOut, reason)
	}

	code, out, errOut := cliRun("status", "--state", state, "--job", "m")
	if code != 0 || !strings.Contains(out, "dead items (1 of 1") || !strings.Contains(errOut, "read-only") {
		t.Fatalf("status on a read-only state: exit %d\nstdout %s\nstderr %s", code, out, errOut)
	}
}
