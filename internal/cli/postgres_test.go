package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rebound-go/rebound/checkpoint"
	"github.com/rebound-go/rebound/checkpoint/postgres"
)

// TestRunAndStatusPostgres runs a job with a PostgreSQL state and checks
// that status lists the worker; without REBOUND_TEST_POSTGRES it skips.
func TestRunAndStatusPostgres(t *testing.T) {
	base := os.Getenv("REBOUND_TEST_POSTGRES")
	if base == "" {
		t.Skip("set REBOUND_TEST_POSTGRES to run it, e.g. REBOUND_TEST_POSTGRES='postgres://postgres@127.0.0.1:5432/test?sslmode=disable'")
	}
	var b [6]byte
	rand.Read(b[:])
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", "rb_cli_"+hex.EncodeToString(b[:]))
	u.RawQuery = q.Encode()
	dsn := u.String()
	t.Cleanup(func() {
		st, err := postgres.Open(context.Background(), dsn, checkpoint.Config{})
		if err != nil {
			t.Error(err)
			return
		}
		if err := st.DropSchema(context.Background()); err != nil {
			t.Error(err)
		}
	})

	srv, hits := countingServer(t)
	dir := t.TempDir()
	m := filepath.Join(dir, "jobs.jsonl")
	var lines []string
	for i := range 30 {
		lines = append(lines, fmt.Sprintf(`{"id":"%d","url":"%s/ok/%d"}`, i, srv.URL, i))
	}
	if err := os.WriteFile(m, []byte(strings.Join(lines, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := cliRun("run", m, "--quiet", "--state", dsn); code != ExitOK {
		t.Fatalf("run: exit %d: %s", code, errOut)
	}
	if hits.Load() != 30 {
		t.Fatalf("%d requests, want 30", hits.Load())
	}
	// No state file is made next to the manifest.
	if _, err := os.Stat(filepath.Join(dir, ".rebound")); !os.IsNotExist(err) {
		t.Errorf("a .rebound directory was made with a PostgreSQL state: %v", err)
	}
	code, out, errOut := cliRun("status", "--state", dsn, "--job", "jobs", "--json")
	var st struct {
		Done     int64
		Complete bool
		Workers  []struct {
			Worker string
			Done   int64
		}
	}
	if err := json.Unmarshal([]byte(out), &st); code != ExitOK || err != nil {
		t.Fatalf("status --json: exit %d, %v: %s %s", code, err, out, errOut)
	}
	if st.Done != 30 || !st.Complete || len(st.Workers) != 1 || st.Workers[0].Done != 30 {
		t.Fatalf("status --json = %+v, want 30 done by one worker", st)
	}
	code, out, errOut = cliRun("status", "--state", dsn, "--job", "jobs")
	if code != ExitOK {
		t.Fatalf("status: exit %d: %s", code, errOut)
	}
	host, _ := os.Hostname()
	if !strings.Contains(out, "workers (1):") || !strings.Contains(out, host+"-") {
		t.Fatalf("status does not list the worker:\n%s", out)
	}
	// A job name is required: a DSN has no file name to take it from.
	if code, _, errOut := cliRun("status", "--state", dsn); code != ExitUsage || !strings.Contains(errOut, "--job") {
		t.Fatalf("status without --job: exit %d: %s", code, errOut)
	}
	// A running second worker on the finished job joins and finds nothing to do.
	if code, _, errOut := cliRun("run", m, "--quiet", "--state", dsn); code != ExitOK || hits.Load() != 30 {
		t.Fatalf("second run: exit %d, %d requests: %s", code, hits.Load(), errOut)
	}
}
