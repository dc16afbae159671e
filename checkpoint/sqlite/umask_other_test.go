//go:build !unix

package sqlite_test

// setUmask is a no-op where there is no umask (Windows: access is by ACL),
// so the tests still compile for every GOOS that .ci/run cross-vets.
func setUmask(int) int { return 0 }
