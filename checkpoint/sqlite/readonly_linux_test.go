//go:build linux

package sqlite_test

import (
	"bytes"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rebound-go/rebound/checkpoint"
	"github.com/rebound-go/rebound/checkpoint/sqlite"
	"github.com/rebound-go/rebound/internal/readonly"
)

// A healthy state on a read-only file system (or without write permission)
// is not "unusable … delete it": the error says what is wrong and that the
// progress is intact, and the file opens read-only and shows its progress.
func TestSQLiteReadOnlyState(t *testing.T) {
	dir := t.TempDir()
	makeStore(t, filepath.Join(dir, "s.db"), 10)
	before, err := os.ReadFile(filepath.Join(dir, "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	view, reason := readonly.View(t, dir)
	path := filepath.Join(view, "s.db")

	_, err = sqlite.Open(path, checkpoint.Config{})
	if !errors.Is(err, checkpoint.ErrReadOnly) || errors.Is(err, checkpoint.ErrBadFile) {
		t.Fatalf("opening for writing: err = %v, want ErrReadOnly, not ErrBadFile", err)
	}
	msg := err.Error()
	for _, bad := range []string{"delete", "unusable", "damaged", "start over"} {
		if strings.Contains(msg, bad) {
			t.Errorf("error %q says %q about a healthy file", msg, bad)
		}
	}
	if !strings.Contains(msg, reason) || !strings.Contains(msg, "intact") || !strings.Contains(msg, path) {
		t.Errorf("error %q does not name the file, say %q, or that the progress is intact", msg, reason)
	}

	s, err := sqlite.Open(path, checkpoint.Config{ReadOnly: true})
	if err != nil {
		t.Fatalf("opening read-only: %v", err)
	}
	defer s.Close()
	st, err := s.Stats(ctx, "j")
	if err != nil || st.Done != 5 || st.Pending != 5 || len(st.Job.ID) != 32 {
		t.Fatalf("Stats read-only = %+v, %v; want 5 done, 5 pending, the job's ID", st, err)
	}
	if _, err := s.Lease(ctx, "j", "w", 1, time.Minute); !errors.Is(err, checkpoint.ErrReadOnly) {
		t.Errorf("Lease on a read-only store: err = %v, want ErrReadOnly", err)
	}
	if _, err := s.TryLockRun("j"); !errors.Is(err, checkpoint.ErrReadOnly) {
		t.Errorf("TryLockRun on a read-only store: err = %v, want ErrReadOnly", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	after, _ := os.ReadFile(filepath.Join(dir, "s.db"))
	if !bytes.Equal(before, after) {
		t.Error("the read-only state file was changed")
	}
}

// A state whose newest writes are still in its -wal (the run was killed)
// opens read-only with them when the -shm is there too; without the -shm
// it cannot be read from a read-only folder, and the error says that,
// not that the file is damaged.
func TestSQLiteReadOnlyStateWithWAL(t *testing.T) {
	src := t.TempDir()
	s := openSQLite(t, filepath.Join(src, "s.db"), checkpoint.Config{})
	defer s.Close()
	if _, err := s.OpenJob(ctx, "j", checkpoint.JobMeta{Fingerprint: "f"}); err != nil {
		t.Fatal(err)
	}
	var items []checkpoint.Item
	for i := range 7 {
		items = append(items, checkpoint.Item{ID: fmt.Sprint(i)})
	}
	if err := s.AddItems(ctx, "j", items); err != nil {
		t.Fatal(err)
	}
	// Copies taken while the store is open are what a killed run leaves.
	withShm, noShm := t.TempDir(), t.TempDir()
	for _, c := range []struct {
		dir   string
		files []string
	}{{withShm, []string{"s.db", "s.db-wal", "s.db-shm"}}, {noShm, []string{"s.db", "s.db-wal"}}} {
		for _, f := range c.files {
			b, err := os.ReadFile(filepath.Join(src, f))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(c.dir, f), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	if fi, err := os.Stat(filepath.Join(withShm, "s.db-wal")); err != nil || fi.Size() == 0 {
		t.Fatalf("no WAL to test with: %v %v", fi, err)
	}

	view, _ := readonly.View(t, withShm)
	ro, err := sqlite.Open(filepath.Join(view, "s.db"), checkpoint.Config{ReadOnly: true})
	if err != nil {
		t.Fatalf("read-only open with -wal and -shm: %v", err)
	}
	defer ro.Close()
	if st, err := ro.Stats(ctx, "j"); err != nil || st.Pending != 7 {
		t.Fatalf("Stats = %+v, %v; want the 7 items in the WAL", st, err)
	}

	view, _ = readonly.View(t, noShm)
	_, err = sqlite.Open(filepath.Join(view, "s.db"), checkpoint.Config{ReadOnly: true})
	if os.Geteuid() != 0 {
		return // the folder's permission bits alone: SQLite reads it as it may
	}
	if !errors.Is(err, checkpoint.ErrReadOnly) || errors.Is(err, checkpoint.ErrBadFile) || !strings.Contains(err.Error(), "-wal") {
		t.Fatalf("read-only open with a -wal but no -shm: err = %v, want ErrReadOnly naming the -wal", err)
	}
}

// chattr +i makes a file that even root cannot write: the error says so
// (operation not permitted) instead of calling the file unusable.
func TestSQLiteImmutableState(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("chattr +i needs root")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "s.db")
	makeStore(t, path, 2)
	if out, err := exec.Command("chattr", "+i", path).CombinedOutput(); err != nil {
		t.Skipf("chattr +i: %v %s", err, out)
	}
	defer exec.Command("chattr", "-i", path).Run()
	_, err := sqlite.Open(path, checkpoint.Config{})
	if !errors.Is(err, checkpoint.ErrReadOnly) || strings.Contains(err.Error(), "delete") || !strings.Contains(err.Error(), "operation not permitted") {
		t.Fatalf("immutable file: err = %v, want ErrReadOnly saying the operation is not permitted, no delete advice", err)
	}
}

// A state another process holds an exclusive lock on is "locked", with its
// progress intact: not unusable, no delete advice.
func TestSQLiteLockedState(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	makeStore(t, path, 2)
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "PRAGMA locking_mode=EXCLUSIVE; BEGIN EXCLUSIVE"); err != nil {
		t.Fatal(err)
	}
	defer conn.ExecContext(ctx, "ROLLBACK")
	_, err = sqlite.Open(path, checkpoint.Config{BusyTimeout: time.Millisecond})
	if !errors.Is(err, checkpoint.ErrLocked) || errors.Is(err, checkpoint.ErrBadFile) || strings.Contains(err.Error(), "delete") {
		t.Fatalf("locked state: err = %v, want ErrLocked without delete advice", err)
	}
}
