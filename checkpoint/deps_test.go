package checkpoint_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNoDatabaseUnlessAsked: the contract and the memory store link no
// database engine, and neither do transfer and reboundhttp, so a program that
// only moves files or sends requests does not carry SQLite (measured: a
// transfer-only binary of 15.5 MB, 9.5 MB without it). Only the store
// packages that are the database bring one.
func TestNoDatabaseUnlessAsked(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on PATH")
	}
	pkgs := []string{"github.com/rebound-go/rebound/checkpoint", "github.com/rebound-go/rebound/checkpoint/memory",
		"github.com/rebound-go/rebound/transfer", "github.com/rebound-go/rebound/reboundhttp"}
	for _, p := range pkgs {
		out, err := exec.Command(gobin, "list", "-deps", p).CombinedOutput()
		if err != nil {
			t.Fatalf("go list %s: %v\n%s", p, err, out)
		}
		for _, dep := range strings.Fields(string(out)) {
			if strings.HasPrefix(dep, "modernc.org/sqlite") || strings.HasPrefix(dep, "github.com/jackc/pgx") ||
				dep == "database/sql" {
				t.Errorf("%s depends on %s", p, dep)
			}
		}
	}
}
