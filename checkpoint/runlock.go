package checkpoint

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// RunLocker is implemented by stores that one process owns at a time
// (SQLite). A run that takes back the leases of a crashed predecessor
// (job.Config.Exclusive, Store.Reclaim) must first hold the run lock, or it
// could take the leases of a predecessor that is still alive and send its
// items a second time. job.Run takes it; so does `rebound run`, before it
// restarts or loads a job.
type RunLocker interface {
	// TryLockRun takes the run lock for job without waiting and returns the
	// function that releases it. If another holder has it, the error wraps
	// ErrLocked and says who holds it. A store may lock more than the job
	// (SQLite locks its whole file); the same store value may take it again
	// while it holds it, and each take needs its own release.
	TryLockRun(job string) (unlock func(), err error)
}

// runLock is the SQLite store's run lock: an exclusive flock on a file
// beside the database (never on the database file itself: closing another
// descriptor of that file would drop SQLite's own POSIX locks). It is
// re-entrant per store value and released by the last unlock or by Close.
type runLock struct {
	path string // the lock file: "<database>-lock"

	mu    sync.Mutex
	f     *os.File
	holds int
}

func (l *runLock) tryLock(what string) (func(), error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.holds == 0 {
		f, err := os.OpenFile(l.path, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return nil, fmt.Errorf("checkpoint: run lock: %w", err)
		}
		ok, err := flockExclusive(f)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("checkpoint: run lock %s: %w", l.path, err)
		}
		if !ok {
			holder := readHolder(f)
			f.Close()
			return nil, fmt.Errorf("%w: %s is being run by %s; wait for that run to end, or stop it, then run again",
				ErrLocked, what, holder)
		}
		// Who holds it, for the next one's error message. Best effort: the
		// lock is the flock, not this text.
		host, _ := os.Hostname()
		if f.Truncate(0) == nil {
			fmt.Fprintf(f, "pid %d on %s since %s\n", os.Getpid(), host, time.Now().UTC().Format(time.RFC3339))
		}
		l.f = f
	}
	l.holds++
	var once sync.Once
	return func() { once.Do(l.release) }, nil
}

func (l *runLock) release() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.holds == 0 {
		return // Close released it already
	}
	if l.holds--; l.holds == 0 {
		l.closeLocked()
	}
}

// close drops the lock whatever the count (the store is closing).
func (l *runLock) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.holds = 0
	l.closeLocked()
}

func (l *runLock) closeLocked() {
	if l.f != nil {
		l.f.Close() // closing the descriptor releases the flock
		l.f = nil
	}
}

// readHolder returns the holder line another run wrote, or a generic name.
func readHolder(f *os.File) string {
	b, err := io.ReadAll(io.LimitReader(f, 256))
	if s := strings.TrimSpace(string(b)); err == nil && s != "" {
		return "another process (" + s + ")"
	}
	return "another process"
}

var errNoFlock = errors.New("file locks are not supported on this system")
