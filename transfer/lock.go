package transfer

import (
	"errors"
	"fmt"

	"github.com/rebound-go/rebound/internal/filelock"
)

// ErrLocked marks a transfer refused because another one, in this process
// or another, holds its target: the same download output (its .part), or
// the same upload (file and endpoint). The message names the holder's pid
// when known. Nothing was sent or written. Test with errors.Is. Systems
// without file locks (Plan 9, wasm) take no lock.
var ErrLocked = errors.New("transfer: target in use")

// lockTarget takes the lock file at path for what (e.g. "download to
// /x/f"). It returns a nil Lock where the system has no file locks.
func lockTarget(path, what string) (*filelock.Lock, error) {
	l, holder, err := filelock.TryLock(path)
	switch {
	case errors.Is(err, filelock.ErrUnsupported):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("transfer: lock %w", err)
	case l == nil:
		who := "another process"
		if holder != "" {
			who += " (" + holder + ")"
		}
		return nil, fmt.Errorf("%w: %s is held by %s; wait for it to end, or stop it, then run again", ErrLocked, what, who)
	}
	return l, nil
}
