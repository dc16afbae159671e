package sqlite_test

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rebound-go/rebound/checkpoint"
	"github.com/rebound-go/rebound/checkpoint/sqlite"
)

var ctx = context.Background()

// makeStore writes a real store with n items (some done) at path and closes it.
func makeStore(t *testing.T, path string, n int) {
	t.Helper()
	s := openSQLite(t, path, checkpoint.Config{})
	if _, err := s.OpenJob(ctx, "j", checkpoint.JobMeta{Fingerprint: "f"}); err != nil {
		t.Fatal(err)
	}
	items := make([]checkpoint.Item, n)
	for i := range items {
		items[i] = checkpoint.Item{ID: fmt.Sprintf("item-%06d", i), Payload: bytes.Repeat([]byte{'p'}, 100)}
	}
	if err := s.AddItems(ctx, "j", items); err != nil {
		t.Fatal(err)
	}
	if n < 2 {
		s.Close()
		return
	}
	got, err := s.Lease(ctx, "j", "w", n/2, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	var rs []checkpoint.Result
	for _, it := range got {
		rs = append(rs, checkpoint.Result{Job: "j", ID: it.ID, Lease: it.Lease, State: checkpoint.Done})
	}
	if err := s.Complete(ctx, rs); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

func rawExec(t *testing.T, path, stmt string) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(stmt); err != nil {
		t.Fatal(err)
	}
}

func TestSQLiteCreatesFile0600(t *testing.T) {
	old := setUmask(0) // the store must not depend on the umask
	defer setUmask(old)
	path := filepath.Join(t.TempDir(), "state.db")
	s := openSQLite(t, path, checkpoint.Config{})
	defer s.Close()
	if _, err := s.OpenJob(ctx, "j", checkpoint.JobMeta{}); err != nil { // a write creates the WAL
		t.Fatal(err)
	}
	for _, p := range []string{path, path + "-wal"} {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", p, st.Mode().Perm())
		}
	}
	var mode string
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode = %q, %v; want wal", mode, err)
	}
	var v int
	if err := db.QueryRow("PRAGMA user_version").Scan(&v); err != nil || v != sqlite.SchemaVersion {
		t.Errorf("user_version = %d, %v; want %d", v, err, sqlite.SchemaVersion)
	}
}

func TestSQLiteRefusesBadFiles(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	randomBytes := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	cases := []struct {
		name string
		make func(t *testing.T, path string)
		want string // in the error message
	}{
		{"random bytes", func(t *testing.T, path string) {
			os.WriteFile(path, randomBytes(8192), 0o600)
		}, "not a SQLite database"},
		{"short random bytes", func(t *testing.T, path string) {
			os.WriteFile(path, randomBytes(10), 0o600)
		}, "not a SQLite database"},
		{"text file", func(t *testing.T, path string) {
			os.WriteFile(path, []byte(`{"id":"a","url":"http://x"}`+"\n"), 0o600)
		}, "not a SQLite database"},
		{"truncated header", func(t *testing.T, path string) {
			makeStore(t, path, 10)
			os.Truncate(path, 50)
		}, "truncated"},
		{"truncated", func(t *testing.T, path string) {
			makeStore(t, path, 2000)
			st, _ := os.Stat(path)
			os.Truncate(path, st.Size()/2)
		}, "truncated"},
		{"damaged page", func(t *testing.T, path string) {
			makeStore(t, path, 2000)
			b, _ := os.ReadFile(path)
			copy(b[len(b)/2:], randomBytes(4096)) // garbage over a b-tree page
			os.WriteFile(path, b, 0o600)
		}, "damaged"},
		{"newer schema", func(t *testing.T, path string) {
			makeStore(t, path, 10)
			rawExec(t, path, "PRAGMA user_version = 99")
		}, "newer rebound (schema version 99"},
		{"another program's database", func(t *testing.T, path string) {
			rawExec(t, path, "CREATE TABLE songs (title TEXT)")
			os.Chmod(path, 0o600)
		}, "another program"},
		{"world-readable", func(t *testing.T, path string) {
			makeStore(t, path, 10)
			os.Chmod(path, 0o644)
		}, "chmod 600"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "state.db")
			tc.make(t, path)
			before, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			s, err := sqlite.Open(path, checkpoint.Config{})
			if err == nil {
				s.Close()
				t.Fatal("OpenSQLite accepted the file")
			}
			msg := err.Error()
			if !errors.Is(err, checkpoint.ErrBadFile) || !strings.Contains(msg, path) || !strings.Contains(msg, tc.want) {
				t.Fatalf("err = %v\nwant ErrBadFile naming %s and saying %q", err, path, tc.want)
			}
			if !strings.Contains(msg, "left unchanged") {
				t.Errorf("error does not say the file is untouched: %v", err)
			}
			t.Logf("%v", err)
			after, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(before, after) {
				t.Fatalf("the refused file changed (%d bytes before, %d after)", len(before), len(after))
			}
		})
	}
}

func TestSQLiteOpenEmptyFileAndOddPath(t *testing.T) {
	// An empty file holds no progress; it is used as a new store. A path
	// with URI-special characters must name that very file.
	path := filepath.Join(t.TempDir(), "a ?b#c%d.db")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	makeStore(t, path, 3)
	s := openSQLite(t, path, checkpoint.Config{})
	defer s.Close()
	st, err := s.Stats(ctx, "j")
	if err != nil || st.Items() != 3 {
		t.Fatalf("Stats = %+v, %v", st, err)
	}
	if ents, _ := os.ReadDir(filepath.Dir(path)); len(ents) > 3 {
		t.Fatalf("unexpected files beside the store: %v", ents)
	}
}

func TestSQLiteRefusesDirectory(t *testing.T) {
	_, err := sqlite.Open(t.TempDir(), checkpoint.Config{})
	if !errors.Is(err, checkpoint.ErrBadFile) {
		t.Fatalf("err = %v, want ErrBadFile", err)
	}
}

// crashEnv names the variable that turns the test binary into the crashing
// child of TestSQLiteSurvivesSIGKILL.
const crashEnv = "REBOUND_CHECKPOINT_CRASH_CHILD"

// TestSQLiteSurvivesSIGKILL runs a child process that adds and leases items
// in batches, completes half of each, flushes every other batch, reports how
// far it got, and goes on until it is killed with SIGKILL. Everything it
// reported as flushed must be in the file afterwards, the file must open
// cleanly (quick_check), and Reclaim must give the leased items back.
func TestSQLiteSurvivesSIGKILL(t *testing.T) {
	if path := os.Getenv(crashEnv); path != "" {
		crashChild(path)
		return
	}
	path := filepath.Join(t.TempDir(), "state.db")
	makeStore(t, path, 0)
	cmd := exec.Command(os.Args[0], "-test.run=^TestSQLiteSurvivesSIGKILL$")
	cmd.Env = append(os.Environ(), crashEnv+"="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	flushed := -1
	for sc.Scan() {
		if _, err := fmt.Sscanf(sc.Text(), "flushed %d", &flushed); err == nil && flushed >= 150 {
			break
		}
	}
	cmd.Process.Kill() // SIGKILL: no deferred Close, no final flush
	cmd.Wait()
	if flushed < 150 {
		t.Fatalf("child stopped early (flushed %d)", flushed)
	}
	s := openSQLite(t, path, checkpoint.Config{})
	defer s.Close()
	st, err := s.Stats(ctx, "j")
	if err != nil {
		t.Fatal(err)
	}
	if st.Done < int64(flushed) || st.Leased < int64(flushed) || st.Items()%100 != 0 || st.Items() != st.Job.Items {
		t.Fatalf("after SIGKILL: %+v; but the child had flushed %d done and held as many leased", st, flushed)
	}
	t.Logf("flushed %d before the kill, %d done in the file, %d still leased", flushed, st.Done, st.Leased)
	n, err := s.Reclaim(ctx, "j")
	if err != nil || int64(n) != st.Leased {
		t.Fatalf("Reclaim = %d, %v; want %d", n, err, st.Leased)
	}
}

func crashChild(path string) {
	s, err := sqlite.Open(path, checkpoint.Config{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	for batch := 0; ; batch++ {
		items := make([]checkpoint.Item, 100)
		for i := range items {
			items[i] = checkpoint.Item{ID: fmt.Sprintf("b%d-%d", batch, i)}
		}
		if err := s.AddItems(ctx, "j", items); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		got, err := s.Lease(ctx, "j", "child", 100, time.Hour)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		// Half of each batch is completed, one result per call as a
		// runner's workers do; the other half stays leased, as if in flight.
		for _, it := range got[:50] {
			s.Complete(ctx, []checkpoint.Result{{Job: "j", ID: it.ID, Lease: it.Lease, State: checkpoint.Done}})
		}
		if batch%2 == 0 { // every other batch is left unflushed
			if err := s.Flush(ctx); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(2)
			}
			fmt.Printf("flushed %d\n", (batch+1)*50)
		}
	}
}

// TestSQLiteQueryPlans pins the plans of the queries that must not scan or
// sort the whole job: Lease and Dead read the head of the items_due index,
// Unfinished seeks into it.
func TestSQLiteQueryPlans(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	makeStore(t, path, 10)
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	queries := []string{sqlite.DeadSQL, sqlite.UnfinishedSQL}
	for _, q := range sqlite.LeaseSQL {
		queries = append(queries, q)
	}
	for _, q := range queries {
		rows, err := db.Query("EXPLAIN QUERY PLAN "+q, 1, 2, 3, 4, 5, 6, 7)
		if err != nil {
			t.Fatal(err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		p := strings.Join(plan, "; ")
		if !strings.Contains(p, "INDEX items_due") || strings.Contains(p, "TEMP B-TREE") || strings.Contains(p, "SCAN") {
			t.Errorf("plan %q\nfor %s\nwant a search of items_due without sorting", p, q)
		}
	}
}

// TestSQLiteRunLock: one run per file. The lock is re-entrant for the store
// that holds it, refused (naming the holder) to any other store of the same
// file, and released by the last unlock or by Close.
func TestSQLiteRunLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	open := func() *sqlite.Store {
		s, err := sqlite.Open(path, checkpoint.Config{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	a, b := open(), open()
	unlock1, err := a.TryLockRun("j")
	if err != nil {
		t.Fatal(err)
	}
	unlock2, err := a.TryLockRun("other job") // same store: re-entrant, whatever the job
	if err != nil {
		t.Fatalf("second take by the holder: %v", err)
	}
	_, err = b.TryLockRun("j")
	if !errors.Is(err, checkpoint.ErrLocked) {
		t.Fatalf("other store took the lock: err = %v, want ErrLocked", err)
	}
	if want := fmt.Sprintf("pid %d", os.Getpid()); !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), path) {
		t.Errorf("error %q does not name the file and the holder (%s)", err, want)
	}
	if st, err := os.Stat(path + "-lock"); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("lock file: %v, mode %v; want 0600", err, st.Mode().Perm())
	}
	unlock1()
	unlock1() // a release is idempotent
	if _, err := b.TryLockRun("j"); !errors.Is(err, checkpoint.ErrLocked) {
		t.Fatalf("lock free after one of two releases: %v", err)
	}
	unlock2()
	unlockB, err := b.TryLockRun("j")
	if err != nil {
		t.Fatalf("lock not free after the last release: %v", err)
	}
	unlockB()

	// Close releases a lock still held.
	if _, err := a.TryLockRun("j"); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := b.TryLockRun("j"); err != nil {
		t.Fatalf("lock not released by Close: %v", err)
	}
	if _, err := a.TryLockRun("j"); !errors.Is(err, checkpoint.ErrClosed) {
		t.Errorf("TryLockRun after Close: %v, want ErrClosed", err)
	}
}

// secondOpenEnv turns the test binary into TestSQLiteSecondOpenLosesNoResult's
// writer.
const secondOpenEnv = "REBOUND_CHECKPOINT_SECOND_OPEN_CHILD"

// TestSQLiteSecondOpenLosesNoResult: a process that opens its store file a
// second time (a status reader next to a run, in one program) drops the
// POSIX lock SQLite holds on the database file, because prepareFile opens
// and closes a descriptor of it (closing any descriptor of a file drops all
// of the process's POSIX locks on it; /proc/locks shows it). The next
// process that closes the file (`rebound status`) might then believe it is
// the last user and delete the write-ahead log under the writer, whose later
// commits would go to the deleted log: lost when it is killed, though Flush
// returned nil. The SQLite that modernc vendors (3.54) also checks the -shm
// file's lock (unixIsSharingShmNode) before it deletes the log, and rebound
// never opens that file itself; this test pins that the result survives.
func TestSQLiteSecondOpenLosesNoResult(t *testing.T) {
	if path := os.Getenv(secondOpenEnv); path != "" {
		secondOpenChild(path)
		return
	}
	path := filepath.Join(t.TempDir(), "state.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestSQLiteSecondOpenLosesNoResult$")
	cmd.Env = append(os.Environ(), secondOpenEnv+"="+path)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer cmd.Process.Kill()
	sc := bufio.NewScanner(out)
	expect := func(line string) {
		t.Helper()
		if !sc.Scan() || sc.Text() != line {
			t.Fatalf("child said %q (%v), want %q", sc.Text(), sc.Err(), line)
		}
	}
	expect("ready")
	// Another process reads the file while the writer works, as `rebound
	// status` does, and closes it.
	r := openSQLite(t, path, checkpoint.Config{})
	if _, err := r.Stats(ctx, "j"); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(in, "go")
	expect("flushed")
	cmd.Process.Kill() // SIGKILL
	cmd.Wait()
	s := openSQLite(t, path, checkpoint.Config{})
	defer s.Close()
	it, err := s.Item(ctx, "j", "b")
	if err != nil {
		t.Fatal(err)
	}
	if it.State != checkpoint.Done {
		t.Fatalf("item b is %v after the writer was killed, but its result was flushed", it.State)
	}
}

func secondOpenChild(path string) {
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	s, err := sqlite.Open(path, checkpoint.Config{})
	if err != nil {
		fail(err)
	}
	if _, err := s.OpenJob(ctx, "j", checkpoint.JobMeta{Fingerprint: "f"}); err != nil {
		fail(err)
	}
	if err := s.AddItems(ctx, "j", []checkpoint.Item{{ID: "a"}, {ID: "b"}}); err != nil {
		fail(err)
	}
	got, err := s.Lease(ctx, "j", "w", 2, time.Hour)
	if err != nil || len(got) != 2 {
		fail(fmt.Errorf("lease: %v %v", got, err))
	}
	// The same process opens the file again, reads and closes it.
	s2, err := sqlite.Open(path, checkpoint.Config{})
	if err != nil {
		fail(err)
	}
	if _, err := s2.Stats(ctx, "j"); err != nil {
		fail(err)
	}
	if err := s2.Close(); err != nil {
		fail(err)
	}
	fmt.Println("ready")
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
		fail(err)
	}
	b := got[1]
	if err := s.Complete(ctx, []checkpoint.Result{{Job: "j", ID: b.ID, Lease: b.Lease, State: checkpoint.Done}}); err != nil {
		fail(err)
	}
	if err := s.Flush(ctx); err != nil {
		fail(err)
	}
	fmt.Println("flushed")
	select {} // until killed
}

// schemaV1 is the layout of schema version 1, before jobs had an ID.
const schemaV1 = `
CREATE TABLE jobs (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, fingerprint TEXT NOT NULL,
	total INTEGER NOT NULL, items INTEGER NOT NULL DEFAULT 0, created INTEGER NOT NULL);
CREATE TABLE items (job INTEGER NOT NULL, id TEXT NOT NULL, payload BLOB, state INTEGER NOT NULL,
	attempts INTEGER NOT NULL DEFAULT 0, err TEXT NOT NULL DEFAULT '', err_kind TEXT NOT NULL DEFAULT '',
	progress BLOB, worker TEXT NOT NULL DEFAULT '', lease INTEGER NOT NULL DEFAULT 0,
	due INTEGER NOT NULL DEFAULT 0, created INTEGER NOT NULL, updated INTEGER NOT NULL, UNIQUE (job, id));
CREATE INDEX items_due ON items (job, state, due) WHERE state <> 3;
CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT INTO meta (key, value) VALUES ('lease_seq', 7);
INSERT INTO jobs (id, name, fingerprint, total, items, created) VALUES (1, 'old', 'f', 2, 2, 1), (2, 'other', 'g', 0, 0, 1);
INSERT INTO items (job, id, state, created, updated) VALUES (1, 'a', 3, 1, 1), (1, 'b', 1, 1, 1);
PRAGMA application_id = 1380077124;
PRAGMA user_version = 1;
PRAGMA journal_mode = WAL;
`

// A state file of schema version 1 keeps working: its jobs get an ID when
// this version first opens it, and keep that ID.
func TestSQLiteMigratesVersion1(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v1.db")
	rawExec(t, path, schemaV1)
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	s := openSQLite(t, path, checkpoint.Config{})
	j, err := s.OpenJob(ctx, "old", checkpoint.JobMeta{Fingerprint: "f", Total: 2})
	if err != nil || !j.Resumed || j.Items != 2 || len(j.ID) != 32 {
		t.Fatalf("OpenJob of a version 1 job = %+v, %v; want it resumed with a 32-digit ID", j, err)
	}
	other, err := s.Job(ctx, "other")
	if err != nil || len(other.ID) != 32 || other.ID == j.ID {
		t.Fatalf("second old job = %+v, %v; want its own ID", other, err)
	}
	got, err := s.Lease(ctx, "old", "w", 5, time.Minute)
	if err != nil || len(got) != 1 || got[0].ID != "b" || got[0].Lease <= 7 {
		t.Fatalf("Lease after migration = %+v, %v; want item b with a token above the old sequence", got, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openSQLite(t, path, checkpoint.Config{})
	defer s.Close()
	again, err := s.Job(ctx, "old")
	if err != nil || again.ID != j.ID {
		t.Fatalf("after reopen: %+v, %v; want ID %q kept", again, err, j.ID)
	}
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var v int
	if err := db.QueryRow("PRAGMA user_version").Scan(&v); err != nil || v != sqlite.SchemaVersion {
		t.Fatalf("user_version = %d, %v; want %d", v, err, sqlite.SchemaVersion)
	}
}

// Options.ReadOnly never creates anything: a missing file is an error and
// stays missing, and an empty file holds no job and stays empty.
func TestSQLiteReadOnlyCreatesNothing(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.db")
	if _, err := sqlite.Open(missing, checkpoint.Config{ReadOnly: true}); err == nil {
		t.Fatal("read-only open of a missing file succeeded")
	}
	if _, err := os.Stat(missing); err == nil {
		t.Fatal("read-only open created the file")
	}
	empty := filepath.Join(dir, "empty.db")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := sqlite.Open(empty, checkpoint.Config{ReadOnly: true}); !errors.Is(err, checkpoint.ErrNoJob) {
		t.Fatalf("read-only open of an empty file: err = %v, want ErrNoJob", err)
	}
	if fi, err := os.Stat(empty); err != nil || fi.Size() != 0 {
		t.Fatalf("the empty file was written: %v %v", fi, err)
	}
}
