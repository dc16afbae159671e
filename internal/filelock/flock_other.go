//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package filelock

import "os"

const supported = false

const oNoFollow = 0

// flockExclusive is unsupported here: TryLock fails with ErrUnsupported
// rather than pretend to protect anything.
func flockExclusive(f *os.File) (bool, error) { return false, ErrUnsupported }
