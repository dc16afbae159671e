// Package filelock takes exclusive advisory locks on files without waiting,
// and records in the lock file who holds it, so that the process refused can
// name the holder. It is the one lock behind checkpoint's run lock and the
// transfers' one-transfer-per-target rule.
//
// On unix the lock is an flock on an open file description; on Windows a
// LockFileEx byte-range lock on the open handle (past the end of the file,
// so the holder's line stays readable). Either is released when the holder
// closes the file or dies (SIGKILL included), never left stale.
package filelock

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// ErrUnsupported is returned where the system has no file lock we use
// (Plan 9, wasm, Solaris): callers decide whether to go on unprotected or
// to refuse.
var ErrUnsupported = errors.New("file locks are not supported on this system")

// Lock is a held lock; Unlock (or the process's end) releases it.
type Lock struct {
	f    *os.File
	path string
}

// TryLock opens path (creating it with mode 0600; a symbolic link there is
// refused, not followed) and takes an exclusive lock on it without waiting.
// When another open file holds the lock, it returns a nil Lock, a nil error
// and holder: the line the holder wrote ("pid 123 on host since ..."), or ""
// if it wrote none. On success this process's line replaces the old one.
func TryLock(path string) (l *Lock, holder string, err error) {
	if !supported {
		return nil, "", ErrUnsupported
	}
	for range 100 {
		f, err := openLockFile(path)
		if err != nil {
			return nil, "", err
		}
		ok, err := lockExclusive(f)
		if err != nil {
			f.Close()
			return nil, "", err
		}
		if !ok {
			holder := readHolder(f)
			f.Close()
			return nil, holder, nil
		}
		// A holder that removes the file on Unlock may have done so between
		// our open and our flock: the lock we hold is then on a file nobody
		// else can find. Only the file still at path counts.
		if same(f, path) {
			host, _ := os.Hostname()
			if f.Truncate(0) == nil {
				fmt.Fprintf(f, "pid %d on %s since %s\n", os.Getpid(), host, time.Now().UTC().Format(time.RFC3339))
			}
			return &Lock{f: f, path: path}, "", nil
		}
		f.Close()
	}
	return nil, "", fmt.Errorf("lock %s: the file keeps being replaced", path)
}

func same(f *os.File, path string) bool {
	a, err := f.Stat()
	if err != nil {
		return false
	}
	b, err := os.Lstat(path)
	return err == nil && os.SameFile(a, b)
}

// Unlock releases the lock, keeping the file (a fixed lock file beside a
// database). It may be called more than once.
func (l *Lock) Unlock() {
	if l.f != nil {
		unlockFile(l.f)
		l.f.Close() // closing the descriptor releases the flock
		l.f = nil
	}
}

// UnlockAndRemove removes the lock file, then releases the lock (a lock
// beside a file that comes and goes, which must not leave litter). Removing
// it while still holding it keeps TryLock's same-file check sound.
func (l *Lock) UnlockAndRemove() {
	if l.f != nil {
		if same(l.f, l.path) {
			os.Remove(l.path)
		}
		l.Unlock()
	}
}

// readHolder returns the holder's line, printable ASCII only (the file may
// sit in a directory others can write to), or "".
func readHolder(f *os.File) string {
	b, err := io.ReadAll(io.LimitReader(f, 256))
	if err != nil {
		return ""
	}
	s := strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e {
			return -1
		}
		return r
	}, strings.TrimSpace(string(b)))
	return s
}
