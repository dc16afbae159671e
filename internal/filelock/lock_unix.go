//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package filelock

import (
	"errors"
	"os"
	"syscall"
)

const supported = true

// openLockFile opens path for reading and writing, creating it with mode
// 0600; O_NOFOLLOW refuses a symbolic link there rather than follow it.
func openLockFile(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
}

// lockExclusive takes an exclusive flock on f without waiting; ok is false
// if another open file description holds it.
func lockExclusive(f *os.File) (ok bool, err error) {
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return false, nil
	}
	return err == nil, err
}

// unlockFile does nothing: closing the descriptor releases the flock.
func unlockFile(*os.File) {}
