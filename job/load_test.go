package job

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/rebound-go/rebound"
	"github.com/rebound-go/rebound/checkpoint"
	"github.com/rebound-go/rebound/checkpoint/memory"
	"github.com/rebound-go/rebound/checkpoint/sqlite"
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
	_, err := LoadManifest(context.Background(), memory.New(checkpoint.Config{}), "m", path)
	var merr *ManifestError
	if !errors.As(err, &merr) {
		t.Fatalf("err = %v, want a *ManifestError", err)
	}
	if len(merr.Lines) != 2 || merr.Lines[0].Line != 2 || merr.Lines[1].Line != 3 {
		t.Fatalf("bad lines %v, want line 2 (duplicate id) and line 3 (not JSON)", merr.Lines)
	}
}

// Idempotency keys belong to a job instance, not to its name: the same
// manifest (same file name, same IDs) run from two state files sends
// different keys, a resumed job sends the keys of its first run, and a
// restarted job sends new ones. A server that deduplicates by key would
// otherwise answer the second job from the first one's stored responses.
func TestKeysScopedToJobInstance(t *testing.T) {
	ctx := context.Background()
	manifest := `{"id":"line-1","method":"POST","url":"http://h/orders"}
{"id":"line-2","method":"POST","url":"http://h/orders"}
`
	// run loads dir/orders.jsonl into the state file in dir and runs it;
	// line-2 fails for good when fail2 is set. It returns the keys sent.
	run := func(dir string, restart, retryDead, fail2 bool) map[string]string {
		t.Helper()
		path := filepath.Join(dir, "orders.jsonl")
		if err := os.WriteFile(path, []byte(manifest), 0o600); err != nil {
			t.Fatal(err)
		}
		st, err := sqlite.Open(filepath.Join(dir, "state.db"), checkpoint.Config{})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		if restart {
			if err := st.Restart(ctx, "orders"); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := LoadManifest(ctx, st, "orders", path); err != nil {
			t.Fatal(err)
		}
		if retryDead {
			if _, err := st.RetryDead(ctx, "orders"); err != nil {
				t.Fatal(err)
			}
		}
		var mu sync.Mutex
		keys := map[string]string{}
		_, err = Run(ctx, Config{Job: "orders", Store: st, Retry: fastRetry(), MaxAttempts: 1},
			func(ctx context.Context, task *Task) error {
				mu.Lock()
				keys[task.ID] = task.Key
				mu.Unlock()
				if fail2 && task.ID == "line-2" {
					return rebound.Permanent(errors.New("refused"))
				}
				return nil
			})
		if err != nil {
			t.Fatal(err)
		}
		return keys
	}
	dirA, dirB := t.TempDir(), t.TempDir()
	first := run(dirA, false, false, true)
	if len(first) != 2 || first["line-1"] == first["line-2"] {
		t.Fatalf("first run sent keys %v", first)
	}
	for id, k := range first {
		if len(k) != 35 || !strings.HasPrefix(k, "rb-") {
			t.Fatalf("key of %s is %q, want rb- and 32 hex digits", id, k)
		}
	}
	other := run(dirB, false, false, false)
	for id, k := range other {
		if k == first["line-1"] || k == first["line-2"] {
			t.Fatalf("another state file's %s sent key %q, which the first job already used (%v)", id, k, first)
		}
	}
	resumed := run(dirA, false, true, false)
	if len(resumed) != 1 || resumed["line-2"] != first["line-2"] {
		t.Fatalf("resumed job sent %v, want line-2 only, with its first key %q", resumed, first["line-2"])
	}
	restarted := run(dirA, true, false, false)
	if len(restarted) != 2 || restarted["line-1"] == first["line-1"] || restarted["line-2"] == first["line-2"] {
		t.Fatalf("restarted job sent %v, want new keys for both items (first job: %v)", restarted, first)
	}
}

// A run cancelled before it starts is interrupted (the CLI's exit 130), not
// a store failure, although reading the job's ID is the first thing it does.
func TestRunCancelledBeforeStartIsInterrupted(t *testing.T) {
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "s.db"), checkpoint.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	addJob(t, st, "a")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = Run(ctx, Config{Job: "j", Store: st}, func(context.Context, *Task) error { return nil })
	if !errors.Is(err, ErrInterrupted) {
		t.Fatalf("err = %v, want ErrInterrupted", err)
	}
}
