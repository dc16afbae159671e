// Reading: one item, a job's counts, and what went wrong.

package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/rebound-go/rebound/checkpoint"
	"github.com/rebound-go/rebound/checkpoint/internal/spi"
)

// unfinishedSQL finds one Pending, Leased or Failed item of job ?1, or no
// row: at most one seek per state in items_due, whatever the job's size,
// where counting the job (Stats) reads every row. It is not written as
// SELECT EXISTS (…) only because that plan adds a "SCAN CONSTANT ROW",
// which TestSQLiteQueryPlans could no longer tell from a scan of items.
const unfinishedSQL = "SELECT 1 FROM items WHERE job = ?1 AND state IN (1, 2, 4) AND state <> 3 LIMIT 1"

// deadSQL lists Dead items in added order through items_due.
var deadSQL = "SELECT " + itemCols + " FROM items WHERE job = ? AND state = 5 AND state <> 3 ORDER BY due, rowid LIMIT ?"

// Item implements checkpoint.Store.
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

// Stats implements checkpoint.Store. It reads every item of the job (in SQLite, not
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
		spi.CountState(&st, checkpoint.ItemState(state), n, attempts, first, last)
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

// TopErrors implements checkpoint.Store.
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

// Dead implements checkpoint.Store.
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

// RetryDead implements checkpoint.Store. It flushes first, so results handed over
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
