//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package checkpoint

import "os"

// flockExclusive is unsupported here: TryLockRun fails with a clear error
// rather than pretend to protect the run.
func flockExclusive(f *os.File) (bool, error) { return false, errNoFlock }
