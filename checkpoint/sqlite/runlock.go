package sqlite

import (
	"github.com/rebound-go/rebound/checkpoint"

	"fmt"
	"sync"

	"github.com/rebound-go/rebound/internal/filelock"
)

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
				checkpoint.ErrLocked, what, who)
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

// TryLockRun implements checkpoint.RunLocker with an exclusive lock on the whole file
// (whatever the job), held in the file "<path>-lock" next to it: one run per
// state file at a time. Readers (`rebound status`) and transfers, which do
// not lease job items, need no lock.
func (s *Store) TryLockRun(job string) (func(), error) {
	if s.isClosed() {
		return nil, checkpoint.ErrClosed
	}
	if s.cfg.ReadOnly {
		return nil, fmt.Errorf("%w: %s was opened read-only", checkpoint.ErrReadOnly, s.path)
	}
	return s.run.tryLock(s.path)
}
