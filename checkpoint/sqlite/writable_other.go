//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package sqlite

// canWrite has no cheap, side-effect-free answer here; SQLite's own errors
// (mapped by sqliteOpenErr) say what went wrong instead.
func canWrite(path string) error { return nil }
