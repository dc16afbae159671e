// The file layout and its versions: the schema a new file gets, and the
// migrations that bring a file of an older version up to date.

package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/rebound-go/rebound/checkpoint/internal/spi"
)

// The file's layout is versioned as PostgreSQL's schema is (see package
// checkpoint, "Schema versions"): migrations[i] takes a file from version i
// to i+1, a new file gets all of them, a file of an older version the ones
// it lacks, in one transaction. The version is PRAGMA user_version: it lives
// in the file header, so a read-only open can check it without a table.

// SchemaVersion is the version of the SQLite file layout this build writes
// (PRAGMA user_version): the number of migrations (a test checks it). Files
// with a higher version are refused; files of an older version are brought up
// to it when opened for writing.
const SchemaVersion = 2

// applicationID marks the file as a rebound checkpoint store ("RBND").
const applicationID = 0x52424E44

// migration is one step of the layout: SQL, then fill (if set) for the data
// the new layout needs, both in the upgrade's transaction.
type migration struct {
	sql  string
	fill func(ctx context.Context, tx *sql.Tx) error
}

// migrations are the layout's versions in order. Never edit one that was
// released; append.
var migrations = []migration{
	// 1: jobs, items, the lease token sequence.
	{sql: `
CREATE TABLE jobs (
	id          INTEGER PRIMARY KEY,
	name        TEXT    NOT NULL UNIQUE,
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
-- (insertion) order: no scan, no sort, whatever the job's size. Done items
-- (most of them, in the end) leave the index, so completing an item only
-- deletes an entry and the index shrinks as the job progresses. SQLite uses
-- a partial index only for queries that contain its WHERE term verbatim, so
-- they say "state <> 3" too (TestSQLiteQueryPlans checks it).
CREATE INDEX items_due ON items (job, state, due) WHERE state <> 3;
CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT INTO meta (key, value) VALUES ('lease_seq', 0);
`},
	// 2: jobs.uid, the job's identity (checkpoint.Job.ID). Jobs stored
	// before get theirs from fillJobIDs.
	{sql: "ALTER TABLE jobs ADD COLUMN uid TEXT NOT NULL DEFAULT ''", fill: fillJobIDs},
}

// upgrade applies the migrations the file lacks in one transaction: all of
// them to a new (empty) file, which also gets its application_id, and the
// missing ones to a file of an older version. The version is read again
// inside the transaction: another process may have upgraded the file since
// init read it.
func (s *Store) upgrade(ctx context.Context, fresh bool) error {
	if !fresh {
		// A new file switches to WAL after its schema exists (prepare); an
		// old one before it is written.
		if err := s.setWAL(ctx); err != nil {
			return err
		}
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("checkpoint: %s: upgrading the schema: %w", s.path, err)
	}
	defer tx.Rollback()
	var version int
	if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return fmt.Errorf("checkpoint: %s: upgrading the schema: %w", s.path, err)
	}
	if version == 0 {
		if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA application_id = %d", applicationID)); err != nil {
			return fmt.Errorf("checkpoint: create schema in %s: %w", s.path, err)
		}
	}
	for v := version; v < SchemaVersion; v++ {
		m := migrations[v]
		if _, err := tx.ExecContext(ctx, m.sql); err != nil {
			return fmt.Errorf("checkpoint: %s: upgrading the schema to version %d: %w", s.path, v+1, err)
		}
		if m.fill != nil {
			if err := m.fill(ctx, tx); err != nil {
				return fmt.Errorf("checkpoint: %s: upgrading the schema to version %d: %w", s.path, v+1, err)
			}
		}
	}
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", SchemaVersion)); err != nil {
		return fmt.Errorf("checkpoint: %s: upgrading the schema to version %d: %w", s.path, SchemaVersion, err)
	}
	return s.wrap(tx.Commit())
}

// fillJobIDs gives every job stored before version 2 its ID, once: every
// later open reads the same one.
func fillJobIDs(ctx context.Context, tx *sql.Tx) error {
	rows, err := tx.QueryContext(ctx, "SELECT id FROM jobs WHERE uid = ''")
	if err != nil {
		return err
	}
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return err
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, id := range ids {
		if _, err := tx.ExecContext(ctx, "UPDATE jobs SET uid = ? WHERE id = ?", spi.NewJobID(), id); err != nil {
			return err
		}
	}
	return nil
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
