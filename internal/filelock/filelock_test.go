//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly || windows

package filelock

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func TestTryLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.lock")
	a, _, err := TryLock(path)
	if err != nil || a == nil {
		t.Fatalf("first lock: %v, %v", a, err)
	}
	b, holder, err := TryLock(path) // another open file description, same process
	if err != nil || b != nil {
		t.Fatalf("second lock taken: %v, %v", b, err)
	}
	if want := fmt.Sprintf("pid %d ", os.Getpid()); !strings.HasPrefix(holder, want) {
		t.Errorf("holder %q, want it to start with %q", holder, want)
	}
	if fi, err := os.Stat(path); err != nil || runtime.GOOS != "windows" && fi.Mode().Perm() != 0o600 {
		t.Errorf("lock file: %v, %v; want mode 0600", fi, err)
	}
	a.UnlockAndRemove()
	a.UnlockAndRemove() // idempotent
	if _, err := os.Lstat(path); !os.IsNotExist(err) {
		t.Fatalf("lock file left behind: %v", err)
	}
	c, _, err := TryLock(path)
	if err != nil || c == nil {
		t.Fatalf("lock not free after release: %v", err)
	}
	c.Unlock()
	if _, err := os.Lstat(path); err != nil {
		t.Fatalf("Unlock removed the file: %v", err)
	}
}

// A lock path planted as a symbolic link is refused, so a lock can never be
// used to create or truncate another file.
func TestTryLockRefusesSymlink(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(dir, "victim")
	os.WriteFile(victim, []byte("keep me"), 0o644)
	path := filepath.Join(dir, "x.lock")
	if err := os.Symlink(victim, path); err != nil {
		t.Skipf("cannot create a symbolic link here: %v", err) // Windows without the privilege
	}
	if l, _, err := TryLock(path); err == nil || l != nil {
		t.Fatalf("locked through a symlink: %v", err)
	}
	if b, _ := os.ReadFile(victim); string(b) != "keep me" {
		t.Fatalf("victim changed: %q", b)
	}
}

// The race UnlockAndRemove leaves open: another process opened the file
// just before the holder removed it, and locks it just after. Its lock is
// then on a file no one else can find, so TryLock must not count it; a
// TryLock after that race holds the only lock on the path.
func TestLockOnRemovedFileDoesNotCount(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.lock")
	a, _, err := TryLock(path)
	if err != nil || a == nil {
		t.Fatalf("first lock: %v, %v", a, err)
	}
	late, err := openLockFile(path) // opened before the removal
	if err != nil {
		t.Fatal(err)
	}
	defer late.Close()
	a.UnlockAndRemove()
	if ok, err := lockExclusive(late); err != nil || !ok {
		t.Fatalf("lock on the removed file: %v, %v", ok, err)
	}
	if same(late, path) {
		t.Fatal("a lock on a removed file is taken for the one at path")
	}
	b, _, err := TryLock(path) // not refused by the lock on the orphan
	if err != nil || b == nil {
		t.Fatalf("lock after the race: %v, %v", b, err)
	}
	defer b.Unlock()
	if c, holder, err := TryLock(path); err != nil || c != nil || holder == "" {
		t.Fatalf("second lock after the race: %v, %q, %v", c, holder, err)
	}
}
