// Package fileperm says whether a file's permissions keep it to its owner,
// in the terms each system has. The checkpoint store holds upload URLs,
// which are capabilities, so it refuses a file that others may read.
package fileperm

import "io/fs"

// OwnerOnly reports whether a file with this mode may be read or written by
// its owner only. On unix that is no permission bit for group or others. On
// Windows it is always true: Go's mode bits there only mirror the read-only
// attribute (every writable file reads 0666), access is decided by the ACL,
// and a file rebound creates inherits its directory's ACL, which under the
// user's profile admits that user (and the system) alone. Checking the mode
// there would refuse every file.
func OwnerOnly(mode fs.FileMode) bool {
	return !modeBitsApply || mode.Perm()&0o077 == 0
}
