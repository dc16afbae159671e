package sqlite

import (
	"github.com/rebound-go/rebound/checkpoint"

	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/rebound-go/rebound/internal/fileperm"
	"modernc.org/sqlite"
)

// sqliteMagic starts every SQLite 3 database file.
const sqliteMagic = "SQLite format 3\x00"

// badFile builds the error for a file we refuse to use. It always names the
// file and says what the user can do, and promises that nothing was changed.
func badFile(path, reason, what string) error {
	return fmt.Errorf("%w: %s: %s; the file was left unchanged. %s", checkpoint.ErrBadFile, path, reason, what)
}

const hintStartOver = "To start over, move the file away or delete it (its recorded progress is lost)"

// readOnlyErr is the error for a healthy store that cannot be written. It
// says what stands in the way and that the progress is safe: deleting the
// file would be exactly the wrong thing to do.
func readOnlyErr(path, reason string) error { return readOnlyCause(path, reason, nil) }

// readOnlyCause is readOnlyErr that also wraps the error that showed it.
func readOnlyCause(path, reason string, cause error) error {
	const advice = "; its recorded progress is intact and the file was left unchanged. " +
		"To resume it, make the file and its folder writable (remount the file system read-write, or fix the owner or permissions); " +
		"to look at it, open it read-only (Config.ReadOnly)"
	if cause != nil {
		return fmt.Errorf("%w: %s: %s (%w)"+advice, checkpoint.ErrReadOnly, path, reason, cause)
	}
	return fmt.Errorf("%w: %s: %s"+advice, checkpoint.ErrReadOnly, path, reason)
}

// checkWritable makes sure an existing store file, and the folder where
// SQLite keeps its -wal and -shm files and the run lock its -lock file, may
// be written, before SQLite is given the file: SQLite would otherwise fail
// with a bare "unable to open database file" that reads like damage.
func checkWritable(path string) error {
	if err := canWrite(path); err != nil {
		return readOnlyErr(path, "cannot write the file ("+err.Error()+")")
	}
	dir := filepath.Dir(path)
	if err := canWrite(dir); err != nil {
		return readOnlyErr(path, "cannot write its folder "+dir+", where its journal and lock files live ("+err.Error()+")")
	}
	return nil
}

// SQLite primary result codes that opening a file may meet (sqlite3.h).
const (
	sqlitePerm     = 3
	sqliteBusy     = 5
	sqliteLocked   = 6
	sqliteReadOnly = 8
	sqliteCorrupt  = 11
	sqliteCantOpen = 14
	sqliteAuth     = 23
	sqliteNotADB   = 26
)

// sqliteCode returns the primary result code of a SQLite error, or 0.
func sqliteCode(err error) int {
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code() & 0xff
	}
	return 0
}

// sqliteOpenErr says what an error of the checks that open a file means.
// Only a file SQLite finds is not a database, or damaged, is called
// unusable with the advice to start over; a file that cannot be written,
// is locked or could not be read for another reason (I/O) keeps its
// progress, and the error says so.
func sqliteOpenErr(path, what string, err error) error {
	switch sqliteCode(err) {
	case sqliteNotADB, sqliteCorrupt:
		return badFile(path, what+" ("+err.Error()+")", hintStartOver)
	case sqliteBusy, sqliteLocked:
		return fmt.Errorf("%w: %s: another process holds a lock on the file (%v); its recorded progress is intact. "+
			"Try again once that process has finished", checkpoint.ErrLocked, path, err)
	case sqliteReadOnly, sqliteCantOpen, sqlitePerm, sqliteAuth:
		return readOnlyCause(path, "SQLite cannot open it, or its -wal and -shm files, for writing", err)
	}
	return fmt.Errorf("checkpoint: %s: %s: %w; the file was left unchanged", path, what, err)
}

// prepareFile makes sure path is a file we may hand to SQLite: it creates a
// missing file with mode 0600 (so the driver never creates it with the
// umask's mode), and checks an existing one without writing to it: regular
// file, no permissions for group or others, and, if not empty, a SQLite
// header that is not cut short. Deeper damage is left to quick_check.
//
// With readOnly, a missing file is an error (nothing is created) and an
// existing one need not be writable; otherwise it must be (checkWritable).
func prepareFile(path string, readOnly bool) error {
	st, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) && !readOnly {
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
		if !fileperm.OwnerOnly(st.Mode()) {
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
	if perm := st.Mode().Perm(); !fileperm.OwnerOnly(perm) {
		// The store holds upload URLs, which are capabilities.
		return badFile(path, fmt.Sprintf("mode %#o lets other users read or write it", perm),
			"Run `chmod 600 "+path+"` and try again")
	}
	if st.Size() == 0 {
		return writableUnless(readOnly, path) // an empty file is an empty database; nothing to lose
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
	// Damage is reported first: a damaged file is no use, writable or not.
	return writableUnless(readOnly, path)
}

func writableUnless(readOnly bool, path string) error {
	if readOnly {
		return nil
	}
	return checkWritable(path)
}
