// The file layout and its versions: the schema a new file gets, and the
// migrations that bring a file of an older version up to date.

package sqlite

import (
	"context"
	"fmt"

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
-- (insertion) order: no scan, no sort, whatever the job's size. Done items
-- (most of them, in the end) leave the index, so completing an item only
-- deletes an entry and the index shrinks as the job progresses. SQLite uses
-- a partial index only for queries that contain its WHERE term verbatim, so
-- they say "state <> 3" too (TestSQLiteQueryPlans checks it).
CREATE INDEX items_due ON items (job, state, due) WHERE state <> 3;
CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT INTO meta (key, value) VALUES ('lease_seq', 0);
`

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
