//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly || windows)

package filelock

import "os"

const supported = false

// openLockFile is never reached here: TryLock fails with ErrUnsupported
// first.
func openLockFile(string) (*os.File, error) { return nil, ErrUnsupported }

// lockExclusive is unsupported here: TryLock fails with ErrUnsupported
// rather than pretend to protect anything.
func lockExclusive(*os.File) (bool, error) { return false, ErrUnsupported }

func unlockFile(*os.File) {}
