//go:build unix

package transfer

import (
	"errors"
	"io/fs"
	"os"
	"syscall"
)

// openPart opens the .part at path for writing, creating it if it is not
// there, without ever following a link: O_NOFOLLOW refuses a symlink, O_EXCL
// a symlink or file planted between our two opens, and the opened file must
// be a regular file with no other name (a hard link planted there would make
// us overwrite the file it names). The checks are on the file opened, not on
// the name beforehand, so a link planted while a response is pending is
// refused too.
func openPart(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|syscall.O_NOFOLLOW, 0)
	if errors.Is(err, fs.ErrNotExist) {
		f, err = os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o644)
	}
	if errors.Is(err, syscall.ELOOP) || errors.Is(err, fs.ErrExist) {
		return nil, notRegular(path)
	}
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err == nil {
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !fi.Mode().IsRegular() || ok && uint64(st.Nlink) > 1 {
			err = notRegular(path)
		}
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}
