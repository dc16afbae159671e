package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/rebound-go/rebound/checkpoint"
	"github.com/rebound-go/rebound/checkpoint/internal/spi"
)

// migration is one step of the schema: SQL, then fill (if set) for the data
// the new schema needs, both in the migration's transaction. The SQLite
// store versions its file the same way (see package checkpoint, "Schema
// versions").
type migration struct {
	sql  string
	fill func(ctx context.Context, tx pgx.Tx) error
}

// migrations are the schema's versions in order: migrations[i] brings the
// schema from version i to i+1. Never edit one that was released; append.
var migrations = []migration{
	// 1: jobs, items, the lease token sequence.
	{sql: `CREATE TABLE jobs (
		id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
		name        text   NOT NULL UNIQUE,
		fingerprint text   NOT NULL,
		total       bigint NOT NULL,
		items       bigint NOT NULL DEFAULT 0,
		created     bigint NOT NULL
	);
	CREATE TABLE items (
		job      bigint   NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
		id       text     NOT NULL,
		seq      bigint   GENERATED ALWAYS AS IDENTITY, -- the added order
		payload  bytea,
		state    smallint NOT NULL,
		attempts integer  NOT NULL DEFAULT 0,
		err      text     NOT NULL DEFAULT '',
		err_kind text     NOT NULL DEFAULT '',
		progress bytea,
		worker   text     NOT NULL DEFAULT '',
		lease    bigint   NOT NULL DEFAULT 0,
		due      bigint   NOT NULL DEFAULT 0, -- failed: next attempt; leased: expiry; Unix ns
		created  bigint   NOT NULL,
		updated  bigint   NOT NULL,
		PRIMARY KEY (job, id)
	);
	-- Lease reads the head of one (job, state) range in (due, seq) order: no
	-- scan, no sort. Done items leave the index, so it shrinks as a job
	-- progresses.
	CREATE INDEX items_due ON items (job, state, due, seq) WHERE state <> 3;
	CREATE SEQUENCE lease_seq;`},
	// 2: jobs.uid, the job's identity (checkpoint.Job.ID). Existing jobs
	// get theirs from fillJobIDs in the same transaction.
	{sql: `ALTER TABLE jobs ADD COLUMN uid text NOT NULL DEFAULT '';`, fill: fillJobIDs},
}

// SchemaVersion is the schema version this build writes: the number of
// migrations (a test checks it). A schema with a higher version (from a
// newer rebound) is refused.
const SchemaVersion = 2

// migrate creates the schema or brings it up to SchemaVersion. The
// transaction-level advisory lock makes workers that start at once wait for
// the first one, which migrates; the others then find nothing to do.
func (s *Store) migrate(ctx context.Context) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return wrap(err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1::int4, hashtext($2))", int32(lockClass), s.schema); err != nil {
		return wrap(err)
	}
	ident := pgx.Identifier{s.schema}.Sanitize()
	stmts := "CREATE SCHEMA IF NOT EXISTS " + ident + ";" +
		"CREATE TABLE IF NOT EXISTS " + ident + ".schema_migrations (version integer PRIMARY KEY, applied timestamptz NOT NULL DEFAULT now())"
	if _, err := tx.Exec(ctx, stmts); err != nil {
		return wrap(err)
	}
	var have int
	if err := tx.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM "+ident+".schema_migrations").Scan(&have); err != nil {
		return wrap(err)
	}
	if have > SchemaVersion {
		return fmt.Errorf("%w: PostgreSQL schema %q was written by a newer rebound (schema version %d, this build knows up to %d); "+
			"nothing was changed. Use the newer rebound, or another schema (search_path in the connection string)",
			checkpoint.ErrBadFile, s.schema, have, SchemaVersion)
	}
	for v := have; v < SchemaVersion; v++ {
		// search_path is the schema, so the migration's names land in it.
		m := migrations[v]
		if _, err := tx.Exec(ctx, m.sql); err != nil {
			return fmt.Errorf("checkpoint/postgres: migrating schema %q to version %d: %w", s.schema, v+1, err)
		}
		if m.fill != nil {
			if err := m.fill(ctx, tx); err != nil {
				return fmt.Errorf("checkpoint/postgres: migrating schema %q to version %d: %w", s.schema, v+1, err)
			}
		}
		if _, err := tx.Exec(ctx, "INSERT INTO "+ident+".schema_migrations (version) VALUES ($1)", v+1); err != nil {
			return wrap(err)
		}
	}
	return wrap(tx.Commit(ctx))
}

// fillJobIDs gives every job stored before version 2 its ID. It runs inside
// the migration's transaction, under its advisory lock: workers that open
// an old schema together wait for the first, and all read the IDs it drew.
func fillJobIDs(ctx context.Context, tx pgx.Tx) error {
	rows, err := tx.Query(ctx, "SELECT id FROM jobs WHERE uid = ''")
	if err != nil {
		return err
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return err
	}
	for _, id := range ids {
		if _, err := tx.Exec(ctx, "UPDATE jobs SET uid = $1 WHERE id = $2", spi.NewJobID(), id); err != nil {
			return err
		}
	}
	return nil
}
