// The lease queue: handing items out, extending, giving back and
// reclaiming leases.

package sqlite

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/rebound-go/rebound/checkpoint"
	"github.com/rebound-go/rebound/checkpoint/internal/spi"
)

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
	it.Job, it.State = job, checkpoint.ItemState(state)
	it.Due, it.Created, it.Updated = spi.FromNano(due), spi.FromNano(created), spi.FromNano(updated)
	if len(prog) > 0 {
		if err := json.Unmarshal(prog, &it.Progress); err != nil {
			return 0, checkpoint.Item{}, fmt.Errorf("item %q: bad progress record: %w", it.ID, err)
		}
	}
	return rowid, it, nil
}

// Lease implements checkpoint.Store.
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
var leaseOrder = [3]checkpoint.ItemState{checkpoint.Leased, checkpoint.Failed, checkpoint.Pending}

// leaseSQL takes up to ?7 leasable items of one state, through the partial
// index items_due (see schema). The limit is "?7 + 0", not "?7": SQLite
// reads a bare bound LIMIT while planning, so each new value would make it
// parse and plan the statement again (measured: a quarter of Lease's time).
func leaseSQL(st checkpoint.ItemState) string {
	return fmt.Sprintf(`UPDATE items SET state = ?1, worker = ?2, lease = ?3, due = ?4, attempts = attempts + 1, updated = ?5
		WHERE rowid IN (SELECT rowid FROM items WHERE job = ?6 AND state = %d AND state <> 3 AND due <= ?5 ORDER BY due, rowid LIMIT ?7 + 0)
		RETURNING %s`, st, itemCols)
}

type byRowid struct {
	rowids []int64
	items  []checkpoint.Item
}

func (b byRowid) Len() int { return len(b.rowids) }

func (b byRowid) Less(i, j int) bool { return b.rowids[i] < b.rowids[j] }

func (b byRowid) Swap(i, j int) {
	b.rowids[i], b.rowids[j] = b.rowids[j], b.rowids[i]
	b.items[i], b.items[j] = b.items[j], b.items[i]
}

// Extend implements checkpoint.Store.
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

// Release implements checkpoint.Store.
func (s *Store) Release(ctx context.Context, job, id string, lease int64) error {
	if s.isClosed() {
		return checkpoint.ErrClosed
	}
	return s.updateLeased(ctx, job, id, lease, "state = 1, due = 0, attempts = max(attempts - 1, 0), updated = ?", s.now().UnixNano())
}

// Defer implements checkpoint.Store.
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

// Reclaim implements checkpoint.Store.
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
