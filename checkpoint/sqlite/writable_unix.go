//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package sqlite

import "syscall"

// canWrite asks the kernel whether this process may write path (W_OK),
// without opening or changing it. The answer honours what permission bits
// alone do not show: a read-only mount (EROFS, even for root) and an
// immutable file (EPERM).
func canWrite(path string) error { return syscall.Access(path, 0x2) }
