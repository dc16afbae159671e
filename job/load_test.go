package job

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/rebound-go/rebound/checkpoint"
)

// A manifest with a bad line and a duplicate ID reports both at once, in
// line order, rather than the duplicate only after the bad line is fixed.
func TestLoadManifestReportsDuplicatesWithBadLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.jsonl")
	manifest := `{"id":"a","url":"http://h/"}
{"id":"a","url":"http://h/"}
{oops
`
	if err := os.WriteFile(path, []byte(manifest), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := LoadManifest(context.Background(), checkpoint.NewMemory(checkpoint.Options{}), "m", path)
	var merr *ManifestError
	if !errors.As(err, &merr) {
		t.Fatalf("err = %v, want a *ManifestError", err)
	}
	if len(merr.Lines) != 2 || merr.Lines[0].Line != 2 || merr.Lines[1].Line != 3 {
		t.Fatalf("bad lines %v, want line 2 (duplicate id) and line 3 (not JSON)", merr.Lines)
	}
}
