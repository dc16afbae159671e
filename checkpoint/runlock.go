package checkpoint

import (
	"fmt"
	"sync"

	"github.com/rebound-go/rebound/internal/filelock"
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

// runLock is the SQLite store's run lock: an exclusive file lock on a file
// beside the database (never on the database file itself: closing another
// descriptor of that file would drop SQLite's own POSIX locks). It is
// re-entrant per store value and released by the last unlock or by Close.
type runLock struct {
	path string // the lock file: "<database>-lock"

	mu    sync.Mutex
	l     *filelock.Lock
	holds int
}

func (l *runLock) tryLock(what string) (func(), error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.holds == 0 {
		fl, holder, err := filelock.TryLock(l.path)
		if err != nil {
			return nil, fmt.Errorf("checkpoint: run lock %s: %w", l.path, err)
		}
		if fl == nil {
			who := "another process"
			if holder != "" {
				who += " (" + holder + ")"
			}
			return nil, fmt.Errorf("%w: %s is being run by %s; wait for that run to end, or stop it, then run again",
				ErrLocked, what, who)
		}
		l.l = fl
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
	if l.l != nil {
		l.l.Unlock()
		l.l = nil
	}
}
