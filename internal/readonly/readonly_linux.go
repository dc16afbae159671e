//go:build linux

package readonly

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// View returns a view of dir that this process really cannot write, and the
// reason the kernel gives. Permission bits do not stop root (tests often run
// as root), so root gets a read-only bind mount instead; a test skips where
// neither works.
func View(t testing.TB, dir string) (view, reason string) {
	t.Helper()
	if os.Geteuid() != 0 {
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			os.Chmod(filepath.Join(dir, e.Name()), 0o400)
		}
		os.Chmod(dir, 0o500)
		t.Cleanup(func() {
			os.Chmod(dir, 0o700)
			for _, e := range entries {
				os.Chmod(filepath.Join(dir, e.Name()), 0o600)
			}
		})
		return dir, "permission denied"
	}
	view = t.TempDir()
	if err := syscall.Mount(dir, view, "", syscall.MS_BIND, ""); err != nil {
		t.Skipf("root without a read-only bind mount (%v): permission bits would not stop root", err)
	}
	t.Cleanup(func() { syscall.Unmount(view, syscall.MNT_DETACH) })
	if err := syscall.Mount("", view, "", syscall.MS_REMOUNT|syscall.MS_BIND|syscall.MS_RDONLY, ""); err != nil {
		t.Skipf("cannot make the bind mount read-only: %v", err)
	}
	return view, "read-only file system"
}
