//go:build windows

package filelock

import (
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/windows"
)

const supported = true

// lockOffset is where the lock sits: one byte far past the end of any lock
// file. Byte-range locks on Windows are mandatory, so a lock on byte 0 (as
// gofrs/flock takes) would stop the refused process from reading the
// holder's line at the start of the file. Locking past EOF is allowed
// (SQLite does the same with its lock bytes).
const lockOffset = 1 << 62

// openLockFile opens path for reading and writing, creating it, without
// following a symbolic link or junction: FILE_FLAG_OPEN_REPARSE_POINT opens
// the link itself, which is then refused. FILE_SHARE_DELETE lets the holder
// remove the file while others have it open, as on unix, so UnlockAndRemove
// removes before it releases. New files inherit the directory's ACL: mode
// bits do not apply on Windows.
func openLockFile(path string) (*os.File, error) {
	p, err := windows.UTF16PtrFromString(path)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	var h windows.Handle
	for try := 0; ; try++ {
		h, err = windows.CreateFile(p,
			windows.GENERIC_READ|windows.GENERIC_WRITE,
			windows.FILE_SHARE_READ|windows.FILE_SHARE_WRITE|windows.FILE_SHARE_DELETE,
			nil, windows.OPEN_ALWAYS,
			windows.FILE_ATTRIBUTE_NORMAL|windows.FILE_FLAG_OPEN_REPARSE_POINT, 0)
		// A file its holder just removed is "delete pending" until the
		// holder's handle closes (on file systems without POSIX delete):
		// opening it is denied for that moment. Try again shortly.
		if !errors.Is(err, windows.ERROR_ACCESS_DENIED) || try == 20 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	var info windows.ByHandleFileInformation
	if err := windows.GetFileInformationByHandle(h, &info); err != nil {
		windows.CloseHandle(h)
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	if info.FileAttributes&(windows.FILE_ATTRIBUTE_REPARSE_POINT|windows.FILE_ATTRIBUTE_DIRECTORY) != 0 {
		windows.CloseHandle(h)
		return nil, &os.PathError{Op: "open", Path: path, Err: errors.New("a link or directory, not a lock file")}
	}
	return os.NewFile(uintptr(h), path), nil
}

// lockExclusive takes an exclusive lock on f without waiting; ok is false
// if another handle holds it.
func lockExclusive(f *os.File) (ok bool, err error) {
	ol := windows.Overlapped{Offset: uint32(lockOffset & 0xffffffff), OffsetHigh: uint32(lockOffset >> 32)}
	err = windows.LockFileEx(windows.Handle(f.Fd()),
		windows.LOCKFILE_EXCLUSIVE_LOCK|windows.LOCKFILE_FAIL_IMMEDIATELY, 0, 1, 0, &ol)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, windows.ERROR_LOCK_VIOLATION), errors.Is(err, windows.ERROR_IO_PENDING):
		return false, nil
	}
	return false, fmt.Errorf("LockFileEx: %w", err)
}

// unlockFile releases the lock before the handle is closed: Windows
// releases the locks of a closed handle too, but only "eventually", and a
// next TryLock in this process must not be refused meanwhile.
func unlockFile(f *os.File) {
	ol := windows.Overlapped{Offset: uint32(lockOffset & 0xffffffff), OffsetHigh: uint32(lockOffset >> 32)}
	windows.UnlockFileEx(windows.Handle(f.Fd()), 0, 1, 0, &ol)
}
