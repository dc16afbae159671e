//go:build !unix

package transfer

import (
	"os"
)

// openPart opens the .part at path for writing, creating it if needed. This
// system has no O_NOFOLLOW: a link is refused by name first and the opened
// file must be a regular one.
func openPart(path string) (*os.File, error) {
	if fi, err := os.Lstat(path); err == nil && !fi.Mode().IsRegular() {
		return nil, notRegular(path)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, notRegular(path)
	}
	return f, nil
}
