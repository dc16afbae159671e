// Package sqlite is rebound's embedded checkpoint store: one SQLite file
// (pure Go, modernc.org/sqlite), for one process at a time. It passes the
// conformance suite checkpoint/storetest and is a checkpoint.RunLocker and a
// checkpoint.Reporter.
//
// The store is split by idea: store.go opens and closes it, file.go checks
// the file before SQLite touches it, schema.go holds the layout and its
// migrations, jobs.go the jobs, lease.go the lease queue, commit.go the
// group commit, report.go the readers, runlock.go the run lock.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"sync"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver (pure Go)

	"github.com/rebound-go/rebound/checkpoint"
	"github.com/rebound-go/rebound/checkpoint/internal/groupcommit"
	"github.com/rebound-go/rebound/checkpoint/internal/spi"
)

// Store is the embedded checkpoint.Store: one database file, used by one process at a
// time. Open it with Open; it is safe for concurrent use.
//
// The file is in WAL mode with synchronous=NORMAL: a committed transaction
// survives the process being killed (SIGKILL), which is what a resumable run
// needs; a power loss may lose the last transactions before the next WAL
// checkpoint, but never corrupts the file. Writes go through one connection;
// Complete and SaveProgress are queued to a committer goroutine that writes
// everything queued so far in one transaction (group commit): under load the
// queue fills while a transaction commits, so batches grow with the load
// and no timer delays a lone write.
//
// Memory is bounded by the queue (Config.QueueSize) and the items leased,
// never by the job's size: no method loads all items.
type Store struct {
	path string
	cfg  checkpoint.Config
	db   *sql.DB

	// Hot statements, prepared once: modernc parses a query given as a
	// string on every call, which cost a third of Lease's time.
	completeStmt, progressStmt, seqStmt *sql.Stmt
	unfinishedStmt                      *sql.Stmt    // polled by idle runners
	leaseStmts                          [3]*sql.Stmt // by leaseOrder

	jobMu  sync.Mutex
	jobIDs map[string]int64 // name -> jobs.id, for opened jobs

	// uidCol selects jobs.uid: "uid", or "''" for a file of schema
	// version 1 opened read-only (it has no such column and cannot get it).
	uidCol string

	gc *groupcommit.Committer[spi.Op] // Complete and SaveProgress; sticky error

	run runLock
}

var (
	_ checkpoint.Store     = (*Store)(nil)
	_ checkpoint.Reporter  = (*Store)(nil)
	_ checkpoint.RunLocker = (*Store)(nil)
)

// Open opens the store in the file at path, creating it (mode 0600)
// if it does not exist. It refuses, with an error wrapping checkpoint.ErrBadFile that
// names the file and says what to do, a file that is not a SQLite database,
// is truncated or damaged (PRAGMA quick_check), belongs to another program,
// was written by a newer schema version, or is readable by other users; it
// never writes to such a file. A healthy file that cannot be written (a
// read-only file system, no write permission on it or its folder) or that
// another process has locked is not checkpoint.ErrBadFile: the error wraps checkpoint.ErrReadOnly
// or checkpoint.ErrLocked and says the progress is intact. Config.ReadOnly opens an
// existing file for reading only (a file of an older schema version is then
// read as it is, without job IDs).
func Open(path string, cfg checkpoint.Config) (*Store, error) {
	if path == "" {
		return nil, fmt.Errorf("%w: empty store path", checkpoint.ErrInvalid)
	}
	if err := spi.ValidateConfig(cfg); err != nil {
		return nil, err
	}
	if err := prepareFile(path, cfg.ReadOnly); err != nil {
		return nil, err
	}
	s, err := openFile(path, cfg, "")
	if cfg.ReadOnly && sqliteCode(err) == sqliteCantOpen {
		// A WAL file read without write access to its folder: SQLite
		// cannot create the -shm it reads through. With no -wal holding
		// newer writes, the file alone is the whole state, and SQLite may
		// read it as immutable.
		if wst, werr := os.Stat(path + "-wal"); errors.Is(werr, fs.ErrNotExist) || (werr == nil && wst.Size() == 0) {
			s, err = openFile(path, cfg, "&immutable=1")
		} else if werr == nil {
			err = readOnlyErr(path, "its newest writes are in "+path+"-wal, which SQLite can read only with write access to the folder")
		}
	}
	if err != nil {
		return nil, err
	}
	s.gc = groupcommit.New(groupcommit.Config[spi.Op]{
		Commit:    s.groupCommit,
		Weight:    spi.Weight,
		MaxBatch:  cfg.MaxBatch,
		QueueSize: cfg.QueueSize,
		ErrClosed: checkpoint.ErrClosed,
	})
	return s, nil
}

// openSQLite opens and checks the (prepared) file; extra is appended to
// the URI's parameters.
func openFile(path string, cfg checkpoint.Config, extra string) (*Store, error) {
	busy := cfg.BusyTimeout
	switch {
	case busy == 0:
		busy = 5 * time.Second
	case busy < 0:
		busy = 0 // none: SQLite's busy_timeout(0) fails a locked write at once
	}
	// journal_mode is set only after the checks below: switching to WAL
	// writes to the file, and a file we refuse must stay as it was.
	dsn := fmt.Sprintf("file:%s?_pragma=busy_timeout(%d)&_pragma=synchronous(NORMAL)&_txlock=immediate",
		escapeURIPath(path), busy.Milliseconds())
	if cfg.ReadOnly {
		dsn += "&mode=ro"
	}
	db, err := sql.Open("sqlite", dsn+extra)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: open %s: %w", path, err)
	}
	// One connection: SQLite has one writer anyway, and one connection
	// keeps per-connection pragmas and the transaction order simple.
	db.SetMaxOpenConns(1)
	s := &Store{path: path, cfg: cfg, db: db, jobIDs: make(map[string]int64), run: runLock{path: path + "-lock"}, uidCol: "uid"}
	if err := s.init(); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// escapeURIPath escapes the characters that would end or alter the path in
// a file: URI.
func escapeURIPath(p string) string {
	return strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(p)
}

func (s *Store) init() error {
	ctx := context.Background()
	var appID, version, tables int64
	err := s.db.QueryRowContext(ctx, "PRAGMA application_id").Scan(&appID)
	if err == nil {
		err = s.db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version)
	}
	if err == nil {
		err = s.db.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_master").Scan(&tables)
	}
	if err != nil {
		return sqliteOpenErr(s.path, "cannot read it as a SQLite database", err)
	}
	switch {
	case appID == 0 && version == 0 && tables == 0 && s.cfg.ReadOnly:
		return fmt.Errorf("%w: %s is an empty store file: no job has been started in it", checkpoint.ErrNoJob, s.path)
	case appID == 0 && version == 0 && tables == 0:
		if err := s.upgrade(ctx, true); err != nil {
			return err
		}
		return s.prepare(ctx)
	case appID != applicationID:
		return badFile(s.path, fmt.Sprintf("a SQLite database of another program (application_id %#x), not a rebound checkpoint store", appID),
			"Use another path for rebound's store")
	case version > SchemaVersion:
		return badFile(s.path, fmt.Sprintf("written by a newer rebound (schema version %d, this build knows up to %d)", version, SchemaVersion),
			"Use the newer rebound to resume it, or move the file away to start over")
	case version < 1:
		return badFile(s.path, fmt.Sprintf("damaged rebound store (schema version %d)", version), hintStartOver)
	}
	if !s.cfg.SkipQuickCheck {
		var res string
		if err := s.db.QueryRowContext(ctx, "PRAGMA quick_check(1)").Scan(&res); err != nil {
			return sqliteOpenErr(s.path, "damaged SQLite database", err)
		}
		if res != "ok" {
			return badFile(s.path, "damaged SQLite database (quick_check: "+res+")", hintStartOver)
		}
	}
	if version < SchemaVersion {
		if s.cfg.ReadOnly {
			s.uidCol = "''" // version 1 has no job IDs; reading needs none
		} else if err := s.upgrade(ctx, false); err != nil {
			return err
		}
	}
	return s.prepare(ctx)
}

// prepare switches the (checked) file to WAL and prepares the hot statements.
func (s *Store) prepare(ctx context.Context) error {
	if !s.cfg.ReadOnly { // a read-only file keeps its journal mode
		if err := s.setWAL(ctx); err != nil {
			return err
		}
	}
	var err error
	s.completeStmt, err = s.db.PrepareContext(ctx, `UPDATE items SET
		state = ?1,
		attempts = CASE WHEN ?2 > 0 THEN ?2 ELSE attempts END,
		err = CASE WHEN ?3 <> '' OR ?4 <> '' THEN ?3 ELSE err END,
		err_kind = CASE WHEN ?3 <> '' OR ?4 <> '' THEN ?4 ELSE err_kind END,
		due = ?5, updated = ?6,
		progress = CASE WHEN ?7 THEN ?8 ELSE progress END
		WHERE job = ?9 AND id = ?10 AND lease = ?11`)
	if err != nil {
		return fmt.Errorf("checkpoint: %s: %w", s.path, err)
	}
	s.progressStmt, err = s.db.PrepareContext(ctx, `UPDATE items SET progress = ?1, updated = ?2
		WHERE job = ?3 AND id = ?4 AND (?5 = 0 OR lease = ?5)`)
	if err != nil {
		return fmt.Errorf("checkpoint: %s: %w", s.path, err)
	}
	s.seqStmt, err = s.db.PrepareContext(ctx, "UPDATE meta SET value = value + 1 WHERE key = 'lease_seq' RETURNING value")
	if err != nil {
		return fmt.Errorf("checkpoint: %s: %w", s.path, err)
	}
	s.unfinishedStmt, err = s.db.PrepareContext(ctx, unfinishedSQL)
	if err != nil {
		return fmt.Errorf("checkpoint: %s: %w", s.path, err)
	}
	for i, st := range leaseOrder {
		if s.leaseStmts[i], err = s.db.PrepareContext(ctx, leaseSQL(st)); err != nil {
			return fmt.Errorf("checkpoint: %s: %w", s.path, err)
		}
	}
	return nil
}

func (s *Store) wrap(err error) error {
	if err == nil {
		return nil
	}
	if sqliteCode(err) == sqliteReadOnly {
		return fmt.Errorf("%w: %s: %w", checkpoint.ErrReadOnly, s.path, err)
	}
	return fmt.Errorf("checkpoint: %s: %w", s.path, err)
}

func (s *Store) isClosed() bool { return s.gc.Closed() }

func (s *Store) now() time.Time { return spi.Now(s.cfg) }

// Close implements checkpoint.Store: it waits for the committer to write everything
// handed over, then closes the file and releases the run lock.
func (s *Store) Close() error {
	err := s.gc.Close()
	if errors.Is(err, checkpoint.ErrClosed) {
		return err // closed before
	}
	defer s.run.close()
	for _, st := range append([]*sql.Stmt{s.completeStmt, s.progressStmt, s.seqStmt, s.unfinishedStmt}, s.leaseStmts[:]...) {
		st.Close()
	}
	if cerr := s.db.Close(); err == nil && cerr != nil {
		err = s.wrap(cerr)
	}
	return err
}
