// Jobs: creating, finding and restarting them, and adding their items.

package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/rebound-go/rebound/checkpoint"
	"github.com/rebound-go/rebound/checkpoint/internal/spi"
)

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

// OpenJob implements checkpoint.Store.
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

// Job implements checkpoint.Store.
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

// Restart implements checkpoint.Store.
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

// AddItems implements checkpoint.Store.
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
