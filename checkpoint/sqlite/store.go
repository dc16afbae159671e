package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver (pure Go)

	"github.com/rebound-go/rebound/checkpoint"
	"github.com/rebound-go/rebound/checkpoint/internal/groupcommit"
	"github.com/rebound-go/rebound/checkpoint/internal/spi"
)

// SchemaVersion is the version of the SQLite file layout this build writes
// (PRAGMA user_version). Files with a higher version are refused; files of
// an older version are brought up to it when opened for writing.
//
// Version 2 added jobs.uid (Job.ID).
const SchemaVersion = 2

// applicationID marks the file as a rebound checkpoint store ("RBND").
const applicationID = 0x52424E44

const schema = `
CREATE TABLE jobs (
	id          INTEGER PRIMARY KEY,
	name        TEXT    NOT NULL UNIQUE,
	uid         TEXT    NOT NULL DEFAULT '', -- Job.ID
	fingerprint TEXT    NOT NULL,
	total       INTEGER NOT NULL,
	items       INTEGER NOT NULL DEFAULT 0,
	created     INTEGER NOT NULL
);
CREATE TABLE items (
	job      INTEGER NOT NULL,
	id       TEXT    NOT NULL,
	payload  BLOB,
	state    INTEGER NOT NULL,
	attempts INTEGER NOT NULL DEFAULT 0,
	err      TEXT    NOT NULL DEFAULT '',
	err_kind TEXT    NOT NULL DEFAULT '',
	progress BLOB,
	worker   TEXT    NOT NULL DEFAULT '',
	lease    INTEGER NOT NULL DEFAULT 0,
	due      INTEGER NOT NULL DEFAULT 0, -- failed: next attempt; leased: expiry; else 0
	created  INTEGER NOT NULL,
	updated  INTEGER NOT NULL,
	UNIQUE (job, id)
);
-- Lease reads the head of one (job, state) range in due order, then rowid
-- (insertion) order: no scan, no sort, whatever the job's size. checkpoint.Done items
-- (most of them, in the end) leave the index, so completing an item only
-- deletes an entry and the index shrinks as the job progresses. SQLite uses
-- a partial index only for queries that contain its WHERE term verbatim, so
-- they say "state <> 3" too (TestSQLiteQueryPlans checks it).
CREATE INDEX items_due ON items (job, state, due) WHERE state <> 3;
CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT INTO meta (key, value) VALUES ('lease_seq', 0);
`

// SQLite is the embedded Store: one database file, used by one process at a
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

	gc *groupcommit.Committer[sqlOp] // Complete and SaveProgress; sticky error

	run runLock
}

var (
	_ checkpoint.Store     = (*Store)(nil)
	_ checkpoint.Reporter  = (*Store)(nil)
	_ checkpoint.RunLocker = (*Store)(nil)
)

// sqlOp is one hand-over to the committer: results or a progress record.
type sqlOp struct {
	results []checkpoint.Result
	prog    *groupcommit.ProgressOp
}

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
	s.gc = groupcommit.New(groupcommit.Config[sqlOp]{
		Commit:    s.groupCommit,
		Weight:    opWeight,
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
		return s.create(ctx)
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
		} else if err := s.migrate(ctx); err != nil {
			return err
		}
	}
	return s.prepare(ctx)
}

// migrate brings a file of an older schema version up to SchemaVersion in
// one transaction. The version is read again inside it: another process
// may have migrated the file since init read it.
func (s *Store) migrate(ctx context.Context) error {
	if err := s.setWAL(ctx); err != nil {
		return err
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("checkpoint: %s: upgrading the schema: %w", s.path, err)
	}
	defer tx.Rollback()
	var version int64
	if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return fmt.Errorf("checkpoint: %s: upgrading the schema: %w", s.path, err)
	}
	if version == 1 {
		// Jobs created before version 2 get their ID now, once: every
		// later open reads the same one.
		if _, err := tx.ExecContext(ctx, "ALTER TABLE jobs ADD COLUMN uid TEXT NOT NULL DEFAULT ''"); err != nil {
			return fmt.Errorf("checkpoint: %s: upgrading the schema to version 2: %w", s.path, err)
		}
		rows, err := tx.QueryContext(ctx, "SELECT id FROM jobs")
		if err != nil {
			return fmt.Errorf("checkpoint: %s: upgrading the schema to version 2: %w", s.path, err)
		}
		var ids []int64
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return fmt.Errorf("checkpoint: %s: upgrading the schema to version 2: %w", s.path, err)
			}
			ids = append(ids, id)
		}
		rows.Close()
		for _, id := range ids {
			if _, err := tx.ExecContext(ctx, "UPDATE jobs SET uid = ? WHERE id = ?", spi.NewJobID(), id); err != nil {
				return fmt.Errorf("checkpoint: %s: upgrading the schema to version 2: %w", s.path, err)
			}
		}
		if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", SchemaVersion)); err != nil {
			return fmt.Errorf("checkpoint: %s: upgrading the schema to version 2: %w", s.path, err)
		}
	}
	return s.wrap(tx.Commit())
}

func (s *Store) create(ctx context.Context) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("checkpoint: create schema in %s: %w", s.path, err)
	}
	defer tx.Rollback()
	stmts := schema + fmt.Sprintf("PRAGMA application_id = %d; PRAGMA user_version = %d;", applicationID, SchemaVersion)
	if _, err := tx.ExecContext(ctx, stmts); err != nil {
		return fmt.Errorf("checkpoint: create schema in %s: %w", s.path, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("checkpoint: create schema in %s: %w", s.path, err)
	}
	return s.prepare(ctx)
}

// setWAL switches the (checked) file to WAL mode.
func (s *Store) setWAL(ctx context.Context) error {
	var mode string
	if err := s.db.QueryRowContext(ctx, "PRAGMA journal_mode=WAL").Scan(&mode); err != nil {
		return fmt.Errorf("checkpoint: %s: set WAL mode: %w", s.path, err)
	}
	if mode != "wal" {
		return fmt.Errorf("checkpoint: %s: journal mode is %q, want wal (is the file on a network file system?)", s.path, mode)
	}
	return nil
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

// querier is what both *sql.DB and *sql.Tx offer. With one connection, code
// inside a transaction must use the transaction, never s.db.
type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// jobID returns the row id of the named job, or checkpoint.ErrNoJob.
func (s *Store) jobID(ctx context.Context, q querier, name string) (int64, error) {
	s.jobMu.Lock()
	id, ok := s.jobIDs[name]
	s.jobMu.Unlock()
	if ok {
		return id, nil
	}
	err := q.QueryRowContext(ctx, "SELECT id FROM jobs WHERE name = ?", name).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, spi.NoJobError(name)
	}
	if err != nil {
		return 0, s.wrap(err)
	}
	s.jobMu.Lock()
	s.jobIDs[name] = id
	s.jobMu.Unlock()
	return id, nil
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

// OpenJob implements Store.
func (s *Store) OpenJob(ctx context.Context, name string, meta checkpoint.JobMeta) (checkpoint.Job, error) {
	if err := spi.ValidateJobName(name); err != nil {
		return checkpoint.Job{}, err
	}
	if s.isClosed() {
		return checkpoint.Job{}, checkpoint.ErrClosed
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return checkpoint.Job{}, s.wrap(err)
	}
	defer tx.Rollback()
	var (
		j       = checkpoint.Job{Name: name}
		id      int64
		created int64
	)
	err = tx.QueryRowContext(ctx, "SELECT id, uid, fingerprint, total, items, created FROM jobs WHERE name = ?", name).
		Scan(&id, &j.ID, &j.Meta.Fingerprint, &j.Meta.Total, &j.Items, &created)
	switch {
	case err == nil:
		if j.Meta != meta {
			return checkpoint.Job{}, spi.ManifestChangedError(name, j.Meta, meta)
		}
		j.Created, j.Resumed = spi.FromNano(created), true
	case errors.Is(err, sql.ErrNoRows):
		j.Meta, j.Created, j.ID = meta, s.now(), spi.NewJobID()
		err = tx.QueryRowContext(ctx, "INSERT INTO jobs (name, uid, fingerprint, total, created) VALUES (?, ?, ?, ?, ?) RETURNING id",
			name, j.ID, meta.Fingerprint, meta.Total, j.Created.UnixNano()).Scan(&id)
		if err != nil {
			return checkpoint.Job{}, s.wrap(err)
		}
		if err := tx.Commit(); err != nil {
			return checkpoint.Job{}, s.wrap(err)
		}
	default:
		return checkpoint.Job{}, s.wrap(err)
	}
	s.jobMu.Lock()
	s.jobIDs[name] = id
	s.jobMu.Unlock()
	return j, nil
}

// Job implements Store.
func (s *Store) Job(ctx context.Context, name string) (checkpoint.Job, error) {
	if s.isClosed() {
		return checkpoint.Job{}, checkpoint.ErrClosed
	}
	j := checkpoint.Job{Name: name, Resumed: true}
	var created int64
	err := s.db.QueryRowContext(ctx, "SELECT "+s.uidCol+", fingerprint, total, items, created FROM jobs WHERE name = ?", name).
		Scan(&j.ID, &j.Meta.Fingerprint, &j.Meta.Total, &j.Items, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return checkpoint.Job{}, spi.NoJobError(name)
	} else if err != nil {
		return checkpoint.Job{}, s.wrap(err)
	}
	j.Created = spi.FromNano(created)
	return j, nil
}

// Restart implements Store.
func (s *Store) Restart(ctx context.Context, name string) error {
	if err := s.Flush(ctx); err != nil {
		return err
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return s.wrap(err)
	}
	defer tx.Rollback()
	var id int64
	err = tx.QueryRowContext(ctx, "DELETE FROM jobs WHERE name = ? RETURNING id", name).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return s.wrap(err)
	}
	if _, err := tx.ExecContext(ctx, "DELETE FROM items WHERE job = ?", id); err != nil {
		return s.wrap(err)
	}
	if err := tx.Commit(); err != nil {
		return s.wrap(err)
	}
	s.jobMu.Lock()
	delete(s.jobIDs, name)
	s.jobMu.Unlock()
	return nil
}

// AddItems implements Store.
func (s *Store) AddItems(ctx context.Context, job string, items []checkpoint.Item) error {
	for _, it := range items {
		if err := spi.ValidateItem(it); err != nil {
			return err
		}
	}
	if s.isClosed() {
		return checkpoint.ErrClosed
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return s.wrap(err)
	}
	defer tx.Rollback()
	id, err := s.jobID(ctx, tx, job)
	if err != nil {
		return err
	}
	var total, have int64
	if err := tx.QueryRowContext(ctx, "SELECT total, items FROM jobs WHERE id = ?", id).Scan(&total, &have); err != nil {
		return s.wrap(err)
	}
	if total > 0 && have+int64(len(items)) > total {
		return fmt.Errorf("%w: job %q: adding %d items to %d would exceed its total of %d", checkpoint.ErrInvalid, job, len(items), have, total)
	}
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO items (job, id, payload, state, created, updated)
		VALUES (?1, ?2, ?3, ?4, ?5, ?5) ON CONFLICT (job, id) DO NOTHING`)
	if err != nil {
		return s.wrap(err)
	}
	defer stmt.Close()
	now := s.now().UnixNano()
	for _, it := range items {
		res, err := stmt.ExecContext(ctx, id, it.ID, it.Payload, checkpoint.Pending, now)
		if err != nil {
			return s.wrap(err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return s.wrap(err)
		} else if n == 0 {
			return fmt.Errorf("%w: job %q: item %q", checkpoint.ErrDuplicateID, job, it.ID)
		}
	}
	if _, err := tx.ExecContext(ctx, "UPDATE jobs SET items = items + ? WHERE id = ?", len(items), id); err != nil {
		return s.wrap(err)
	}
	return s.wrap(tx.Commit())
}

const itemCols = "rowid, id, payload, state, attempts, err, err_kind, progress, worker, lease, due, created, updated"

type scanner interface{ Scan(dest ...any) error }

func scanItem(sc scanner, job string) (rowid int64, it checkpoint.Item, err error) {
	var (
		state                 int64
		prog                  []byte
		due, created, updated int64
	)
	err = sc.Scan(&rowid, &it.ID, &it.Payload, &state, &it.Attempts, &it.Err, &it.ErrKind, &prog,
		&it.Worker, &it.Lease, &due, &created, &updated)
	if err != nil {
		return 0, checkpoint.Item{}, err
	}
	it.Job, it.State = job, checkpoint.State(state)
	it.Due, it.Created, it.Updated = spi.FromNano(due), spi.FromNano(created), spi.FromNano(updated)
	if len(prog) > 0 {
		if err := json.Unmarshal(prog, &it.Progress); err != nil {
			return 0, checkpoint.Item{}, fmt.Errorf("item %q: bad progress record: %w", it.ID, err)
		}
	}
	return rowid, it, nil
}

// Lease implements Store.
func (s *Store) Lease(ctx context.Context, job, worker string, n int, ttl time.Duration) ([]checkpoint.Item, error) {
	if err := spi.ValidateLease(n, ttl); err != nil {
		return nil, err
	}
	if s.isClosed() {
		return nil, checkpoint.ErrClosed
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, s.wrap(err)
	}
	defer tx.Rollback()
	id, err := s.jobID(ctx, tx, job)
	if err != nil {
		return nil, err
	}
	now := s.now()
	nowN := now.UnixNano()
	// One token per call: a token only has to differ from every earlier
	// token of the same item, and the sequence never goes back.
	var tok int64
	if err := tx.StmtContext(ctx, s.seqStmt).QueryRowContext(ctx).Scan(&tok); err != nil {
		return nil, s.wrap(err)
	}
	due := now.Add(ttl).UnixNano()
	var out []checkpoint.Item
	// Each statement takes the head of one index range.
	for i := range leaseOrder {
		if len(out) == n {
			break
		}
		rows, err := tx.StmtContext(ctx, s.leaseStmts[i]).QueryContext(ctx, checkpoint.Leased, worker, tok, due, nowN, id, n-len(out))
		if err != nil {
			return nil, s.wrap(err)
		}
		first := len(out)
		var rowids []int64
		for rows.Next() {
			rowid, it, err := scanItem(rows, job)
			if err != nil {
				rows.Close()
				return nil, s.wrap(err)
			}
			rowids = append(rowids, rowid)
			out = append(out, it)
		}
		if err := rows.Close(); err != nil {
			return nil, s.wrap(err)
		}
		if err := rows.Err(); err != nil {
			return nil, s.wrap(err)
		}
		// RETURNING has no defined order; give each class in added order.
		sort.Sort(byRowid{rowids, out[first:]})
	}
	if len(out) == 0 {
		return nil, nil // nothing leasable; the rollback undoes the token
	}
	if err := tx.Commit(); err != nil {
		return nil, s.wrap(err)
	}
	return out, nil
}

// leaseOrder is the order Lease takes items in: expired leases (a dead
// worker's items), then due retries, then new work.
var leaseOrder = [3]checkpoint.State{checkpoint.Leased, checkpoint.Failed, checkpoint.Pending}

// leaseSQL takes up to ?7 leasable items of one state, through the partial
// index items_due (see schema). The limit is "?7 + 0", not "?7": SQLite
// reads a bare bound LIMIT while planning, so each new value would make it
// parse and plan the statement again (measured: a quarter of Lease's time).
func leaseSQL(st checkpoint.State) string {
	return fmt.Sprintf(`UPDATE items SET state = ?1, worker = ?2, lease = ?3, due = ?4, attempts = attempts + 1, updated = ?5
		WHERE rowid IN (SELECT rowid FROM items WHERE job = ?6 AND state = %d AND state <> 3 AND due <= ?5 ORDER BY due, rowid LIMIT ?7 + 0)
		RETURNING %s`, st, itemCols)
}

// unfinishedSQL finds one checkpoint.Pending, checkpoint.Leased or checkpoint.Failed item of job ?1, or no
// row: at most one seek per state in items_due, whatever the job's size,
// where counting the job (checkpoint.Stats) reads every row. It is not written as
// SELECT EXISTS (…) only because that plan adds a "SCAN CONSTANT ROW",
// which TestSQLiteQueryPlans could no longer tell from a scan of items.
const unfinishedSQL = "SELECT 1 FROM items WHERE job = ?1 AND state IN (1, 2, 4) AND state <> 3 LIMIT 1"

// deadSQL lists checkpoint.Dead items in added order through items_due.
var deadSQL = "SELECT " + itemCols + " FROM items WHERE job = ? AND state = 5 AND state <> 3 ORDER BY due, rowid LIMIT ?"

type byRowid struct {
	rowids []int64
	items  []checkpoint.Item
}

func (b byRowid) Len() int           { return len(b.rowids) }
func (b byRowid) Less(i, j int) bool { return b.rowids[i] < b.rowids[j] }
func (b byRowid) Swap(i, j int) {
	b.rowids[i], b.rowids[j] = b.rowids[j], b.rowids[i]
	b.items[i], b.items[j] = b.items[j], b.items[i]
}

// Extend implements Store.
func (s *Store) Extend(ctx context.Context, job, id string, lease int64, ttl time.Duration) error {
	if ttl <= 0 {
		return fmt.Errorf("%w: lease TTL %v <= 0", checkpoint.ErrInvalid, ttl)
	}
	if s.isClosed() {
		return checkpoint.ErrClosed
	}
	now := s.now()
	return s.updateLeased(ctx, job, id, lease, "due = ?, updated = ?", now.Add(ttl).UnixNano(), now.UnixNano())
}

// updateLeased applies set (with its args) to the item while lease holds
// it, or returns an error wrapping checkpoint.ErrLeaseLost.
func (s *Store) updateLeased(ctx context.Context, job, id string, lease int64, set string, args ...any) error {
	jid, err := s.jobID(ctx, s.db, job)
	if err != nil {
		return err
	}
	res, err := s.db.ExecContext(ctx, "UPDATE items SET "+set+" WHERE job = ? AND id = ? AND lease = ? AND state = 2 AND lease <> 0",
		append(args, jid, id, lease)...)
	if err != nil {
		return s.wrap(err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return s.wrap(err)
	} else if n == 0 {
		return spi.LeaseLostError(job, id, lease)
	}
	return nil
}

// Release implements Store.
func (s *Store) Release(ctx context.Context, job, id string, lease int64) error {
	if s.isClosed() {
		return checkpoint.ErrClosed
	}
	return s.updateLeased(ctx, job, id, lease, "state = 1, due = 0, attempts = max(attempts - 1, 0), updated = ?", s.now().UnixNano())
}

// Defer implements Store.
func (s *Store) Defer(ctx context.Context, job, id string, lease int64, next time.Time, err, errKind string) error {
	if s.isClosed() {
		return checkpoint.ErrClosed
	}
	now := s.now().UnixNano()
	due := now
	if !next.IsZero() {
		due = next.UnixNano()
	}
	set, args := "state = 4, due = ?, attempts = max(attempts - 1, 0), updated = ?", []any{due, now}
	if err != "" || errKind != "" {
		set, args = set+", err = ?, err_kind = ?", append(args, spi.CutErr(err), errKind)
	}
	return s.updateLeased(ctx, job, id, lease, set, args...)
}

// Reclaim implements Store.
func (s *Store) Reclaim(ctx context.Context, job string) (int, error) {
	if s.isClosed() {
		return 0, checkpoint.ErrClosed
	}
	jid, err := s.jobID(ctx, s.db, job)
	if err != nil {
		return 0, err
	}
	res, err := s.db.ExecContext(ctx, "UPDATE items SET state = 1, due = 0, updated = ? WHERE job = ? AND state = 2 AND state <> 3",
		s.now().UnixNano(), jid)
	if err != nil {
		return 0, s.wrap(err)
	}
	n, err := res.RowsAffected()
	return int(n), s.wrap(err)
}

// Complete implements Store. It copies results; the caller may reuse them.
func (s *Store) Complete(ctx context.Context, results []checkpoint.Result) error {
	for _, r := range results {
		if err := spi.ValidateResult(r); err != nil {
			return err
		}
	}
	if len(results) == 0 {
		return nil
	}
	return s.gc.Send(ctx, sqlOp{results: append([]checkpoint.Result(nil), results...)})
}

// SaveProgress implements Store.
func (s *Store) SaveProgress(ctx context.Context, job, id string, lease int64, p checkpoint.Progress) error {
	if err := spi.ValidateProgress(p); err != nil {
		return err
	}
	op, err := groupcommit.NewProgressOp(job, id, lease, p)
	if err != nil {
		return err
	}
	return s.gc.Send(ctx, sqlOp{prog: op})
}

// Flush implements Store.
func (s *Store) Flush(ctx context.Context) error { return s.gc.Flush(ctx) }

// opWeight is what an operation counts toward Config.MaxBatch: its results,
// plus one for the hand-over.
func opWeight(op sqlOp) int { return len(op.results) + 1 }

// groupCommit is the committer's Commit: it writes one batch in one
// transaction (an empty batch, of flushes only, commits an empty one).
// Its error makes the store unusable, so it says so.
func (s *Store) groupCommit(batch []sqlOp) error {
	if err := s.commit(batch); err != nil {
		return fmt.Errorf("checkpoint: %s: group commit failed, its results are lost and the store is unusable (reopen it): %w", s.path, err)
	}
	return nil
}

func (s *Store) commit(batch []sqlOp) error {
	ctx := context.Background()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	complete := tx.StmtContext(ctx, s.completeStmt)
	progress := tx.StmtContext(ctx, s.progressStmt)
	now := s.now()
	nowN := now.UnixNano()
	for _, op := range batch {
		for _, r := range op.results {
			if r.Lease == 0 {
				continue // never leased: no lease token can hold it
			}
			jid, err := s.jobID(ctx, tx, r.Job)
			if errors.Is(err, checkpoint.ErrNoJob) {
				continue // restarted: the result belongs to nothing now
			} else if err != nil {
				return err
			}
			var due int64
			if r.State == checkpoint.Failed {
				due = nowN
				if !r.NextAt.IsZero() {
					due = r.NextAt.UnixNano()
				}
			}
			var prog []byte
			if r.Progress != nil {
				if prog, err = groupcommit.EncodeProgress(*r.Progress); err != nil {
					return err
				}
			}
			if _, err := complete.ExecContext(ctx, r.State, r.Attempts, spi.CutErr(r.Err), r.ErrKind, due, nowN,
				r.Progress != nil, prog, jid, r.ID, r.Lease); err != nil {
				return err
			}
		}
		if p := op.prog; p != nil {
			jid, err := s.jobID(ctx, tx, p.Job)
			if errors.Is(err, checkpoint.ErrNoJob) {
				continue
			} else if err != nil {
				return err
			}
			if _, err := progress.ExecContext(ctx, p.Data, nowN, jid, p.ID, p.Lease); err != nil {
				return err
			}
		}
	}
	return tx.Commit()
}

// Item implements Store.
func (s *Store) Item(ctx context.Context, job, id string) (checkpoint.Item, error) {
	if s.isClosed() {
		return checkpoint.Item{}, checkpoint.ErrClosed
	}
	jid, err := s.jobID(ctx, s.db, job)
	if err != nil {
		return checkpoint.Item{}, err
	}
	_, it, err := scanItem(s.db.QueryRowContext(ctx, "SELECT "+itemCols+" FROM items WHERE job = ? AND id = ?", jid, id), job)
	if errors.Is(err, sql.ErrNoRows) {
		return checkpoint.Item{}, spi.NoItemError(job, id)
	}
	return it, s.wrap(err)
}

// Stats implements Store. It reads every item of the job (in SQLite, not
// in memory).
func (s *Store) Stats(ctx context.Context, job string) (checkpoint.Stats, error) {
	if s.isClosed() {
		return checkpoint.Stats{}, checkpoint.ErrClosed
	}
	var (
		st      = checkpoint.Stats{Job: checkpoint.Job{Name: job, Resumed: true}}
		created int64
	)
	err := s.db.QueryRowContext(ctx, "SELECT "+s.uidCol+", fingerprint, total, items, created FROM jobs WHERE name = ?", job).
		Scan(&st.Job.ID, &st.Job.Meta.Fingerprint, &st.Job.Meta.Total, &st.Job.Items, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return checkpoint.Stats{}, spi.NoJobError(job)
	} else if err != nil {
		return checkpoint.Stats{}, s.wrap(err)
	}
	st.Job.Created = spi.FromNano(created)
	jid, err := s.jobID(ctx, s.db, job)
	if err != nil {
		return checkpoint.Stats{}, err
	}
	rows, err := s.db.QueryContext(ctx, "SELECT state, count(*), sum(attempts), min(updated), max(updated) FROM items WHERE job = ? GROUP BY state", jid)
	if err != nil {
		return checkpoint.Stats{}, s.wrap(err)
	}
	defer rows.Close()
	for rows.Next() {
		var state, n, attempts, first, last int64
		if err := rows.Scan(&state, &n, &attempts, &first, &last); err != nil {
			return checkpoint.Stats{}, s.wrap(err)
		}
		st.Attempts += attempts
		switch checkpoint.State(state) {
		case checkpoint.Pending:
			st.Pending = n
		case checkpoint.Leased:
			st.Leased = n
		case checkpoint.Done:
			st.Done, st.FirstDone, st.LastDone = n, spi.FromNano(first), spi.FromNano(last)
		case checkpoint.Failed:
			st.Failed = n
		case checkpoint.Dead:
			st.Dead = n
		}
	}
	return st, s.wrap(rows.Err())
}

// Unfinished implements checkpoint.Store through the partial index items_due.
func (s *Store) Unfinished(ctx context.Context, job string) (bool, error) {
	if s.isClosed() {
		return false, checkpoint.ErrClosed
	}
	jid, err := s.jobID(ctx, s.db, job)
	if err != nil {
		return false, err
	}
	var one int
	err = s.unfinishedStmt.QueryRowContext(ctx, jid).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, s.wrap(err)
	}
	return true, nil
}

// TopErrors implements Store.
func (s *Store) TopErrors(ctx context.Context, job string, n int) ([]checkpoint.ErrorCount, error) {
	if n < 1 {
		return nil, fmt.Errorf("%w: n %d < 1", checkpoint.ErrInvalid, n)
	}
	if s.isClosed() {
		return nil, checkpoint.ErrClosed
	}
	jid, err := s.jobID(ctx, s.db, job)
	if err != nil {
		return nil, err
	}
	rows, err := s.db.QueryContext(ctx, `SELECT err_kind, err, count(*) AS c FROM items
		WHERE job = ? AND state IN (4, 5) GROUP BY err_kind, err ORDER BY c DESC, err_kind, err LIMIT ?`,
		jid, n)
	if err != nil {
		return nil, s.wrap(err)
	}
	defer rows.Close()
	var out []checkpoint.ErrorCount
	for rows.Next() {
		var e checkpoint.ErrorCount
		if err := rows.Scan(&e.Kind, &e.Err, &e.Count); err != nil {
			return nil, s.wrap(err)
		}
		out = append(out, e)
	}
	return out, s.wrap(rows.Err())
}

// Dead implements Store.
func (s *Store) Dead(ctx context.Context, job string, limit int) ([]checkpoint.Item, error) {
	if limit < 1 {
		return nil, fmt.Errorf("%w: limit %d < 1", checkpoint.ErrInvalid, limit)
	}
	if s.isClosed() {
		return nil, checkpoint.ErrClosed
	}
	jid, err := s.jobID(ctx, s.db, job)
	if err != nil {
		return nil, err
	}
	rows, err := s.db.QueryContext(ctx, deadSQL, jid, limit)
	if err != nil {
		return nil, s.wrap(err)
	}
	defer rows.Close()
	var out []checkpoint.Item
	for rows.Next() {
		_, it, err := scanItem(rows, job)
		if err != nil {
			return nil, s.wrap(err)
		}
		out = append(out, it)
	}
	return out, s.wrap(rows.Err())
}

// RetryDead implements Store. It flushes first, so results handed over
// before it are included.
func (s *Store) RetryDead(ctx context.Context, job string) (int64, error) {
	if err := s.Flush(ctx); err != nil {
		return 0, err
	}
	jid, err := s.jobID(ctx, s.db, job)
	if err != nil {
		return 0, err
	}
	res, err := s.db.ExecContext(ctx, "UPDATE items SET state = 1, attempts = 0, due = 0, updated = ? WHERE job = ? AND state = 5 AND state <> 3",
		s.now().UnixNano(), jid)
	if err != nil {
		return 0, s.wrap(err)
	}
	n, err := res.RowsAffected()
	return n, s.wrap(err)
}

// TryLockRun implements checkpoint.RunLocker with an exclusive lock on the whole file
// (whatever the job), held in the file "<path>-lock" next to it: one run per
// state file at a time. Readers (`rebound status`) and transfers, which do
// not lease job items, need no lock.
func (s *Store) TryLockRun(job string) (func(), error) {
	if s.isClosed() {
		return nil, checkpoint.ErrClosed
	}
	if s.cfg.ReadOnly {
		return nil, fmt.Errorf("%w: %s was opened read-only", checkpoint.ErrReadOnly, s.path)
	}
	return s.run.tryLock(s.path)
}

// Close implements Store: it waits for the committer to write everything
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
