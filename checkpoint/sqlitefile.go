package checkpoint

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
)

// sqliteMagic starts every SQLite 3 database file.
const sqliteMagic = "SQLite format 3\x00"

// badFile builds the error for a file we refuse to use. It always names the
// file and says what the user can do, and promises that nothing was changed.
func badFile(path, reason, what string) error {
	return fmt.Errorf("%w: %s: %s; the file was left unchanged. %s", ErrBadFile, path, reason, what)
}

const hintStartOver = "To start over, move the file away or delete it (its recorded progress is lost)"

// prepareFile makes sure path is a file we may hand to SQLite: it creates a
// missing file with mode 0600 (so the driver never creates it with the
// umask's mode), and checks an existing one without writing to it: regular
// file, no permissions for group or others, and, if not empty, a SQLite
// header that is not cut short. Deeper damage is left to quick_check.
func prepareFile(path string) error {
	st, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return fmt.Errorf("checkpoint: create store file: %w", err)
		}
		if err := f.Chmod(0o600); err != nil { // the umask may only remove bits; be explicit anyway
			f.Close()
			return fmt.Errorf("checkpoint: create store file: %w", err)
		}
		if err := f.Close(); err != nil {
			return fmt.Errorf("checkpoint: create store file: %w", err)
		}
		st, err = os.Stat(path)
		if err != nil {
			return fmt.Errorf("checkpoint: create store file: %w", err)
		}
		if st.Mode().Perm() != 0o600 {
			return fmt.Errorf("checkpoint: created %s with mode %v, want 0600", path, st.Mode().Perm())
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("checkpoint: open store file: %w", err)
	}
	if !st.Mode().IsRegular() {
		return badFile(path, fmt.Sprintf("not a regular file (%v)", st.Mode().Type()), "Point rebound at a file path")
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		// The store holds upload URLs, which are capabilities.
		return badFile(path, fmt.Sprintf("mode %#o lets other users read or write it", perm),
			"Run `chmod 600 "+path+"` and try again")
	}
	if st.Size() == 0 {
		return nil // an empty file is an empty database; nothing to lose
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("checkpoint: open store file: %w", err)
	}
	defer f.Close()
	var h [100]byte
	if _, err := io.ReadFull(f, h[:]); err != nil {
		if string(h[:min(len(sqliteMagic), int(st.Size()))]) == sqliteMagic[:min(len(sqliteMagic), int(st.Size()))] {
			return badFile(path, fmt.Sprintf("truncated SQLite database (%d bytes, shorter than its header)", st.Size()), hintStartOver)
		}
		return badFile(path, "not a SQLite database (no SQLite header)", hintStartOver)
	}
	if string(h[:len(sqliteMagic)]) != sqliteMagic {
		return badFile(path, "not a SQLite database (no SQLite header)", hintStartOver)
	}
	pageSize := int64(binary.BigEndian.Uint16(h[16:18]))
	if pageSize == 1 {
		pageSize = 65536
	}
	if pageSize < 512 || pageSize&(pageSize-1) != 0 {
		return badFile(path, fmt.Sprintf("damaged SQLite header (page size %d)", pageSize), hintStartOver)
	}
	// The page count in the header is valid when "version-valid-for"
	// equals the change counter. Compare it with the file's size only when
	// no write-ahead log holds pages that a checkpoint was still copying.
	changeCounter := binary.BigEndian.Uint32(h[24:28])
	pages := int64(binary.BigEndian.Uint32(h[28:32]))
	validFor := binary.BigEndian.Uint32(h[92:96])
	walSize := int64(0)
	if wst, err := os.Stat(path + "-wal"); err == nil {
		walSize = wst.Size()
	}
	if walSize == 0 && pages > 0 && validFor == changeCounter && st.Size() < pages*pageSize {
		return badFile(path, fmt.Sprintf("truncated SQLite database (%d bytes, its header says %d)", st.Size(), pages*pageSize), hintStartOver)
	}
	return nil
}
