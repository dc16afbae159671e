package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/rebound-go/rebound"
	"github.com/rebound-go/rebound/checkpoint"
	"github.com/rebound-go/rebound/checkpoint/internal/groupcommit"
	"github.com/rebound-go/rebound/checkpoint/internal/spi"
)

// commitRetry retries a group commit whose connection failed: long enough
// to ride out a database restart or a network cut, bounded so that Close
// and Flush return in the end.
var commitRetry = rebound.Retry{
	Name:        "checkpoint/postgres group commit",
	MaxAttempts: 1000, // bounded by MaxElapsed
	MaxElapsed:  2 * time.Minute,
	Backoff:     rebound.Backoff{Initial: 100 * time.Millisecond, Max: 5 * time.Second},
	Classify:    classify,
}

// groupCommit is the committer's Commit: it writes one batch, retrying
// while the connection fails (commitRetry). An error that persists makes
// the store unusable, so it says so.
func (s *Store) groupCommit(batch []spi.Op) error {
	err := commitRetry.Do(context.Background(), func(ctx context.Context) error {
		// A connection that went silent (no reset) must not stall
		// every writer: bound each attempt.
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		return s.commit(ctx, batch)
	})
	if err != nil {
		// Permanent from here on: a caller that retries store errors
		// must not retry this one.
		return rebound.Permanent(fmt.Errorf("checkpoint/postgres: group commit failed, its results are lost and the store is unusable (reopen it): %w", err))
	}
	return nil
}

// updateCols are the columns of the writes to one job that one statement
// applies; a write is a result or a progress record.
type updateCols struct {
	job                      string
	ids                      []string
	leases, nextAt           []int64
	states                   []int16
	attempts                 []int32
	errs, kinds              []string
	isResult, setErr, setPrg []bool
	progs                    [][]byte
	have                     map[string]struct{}
}

func (u *updateCols) add(id string, lease int64, state checkpoint.ItemState, attempts int, err, kind string,
	nextAt int64, isResult, setPrg bool, prog []byte) {
	u.ids, u.leases = append(u.ids, id), append(u.leases, lease)
	u.states, u.attempts = append(u.states, int16(state)), append(u.attempts, int32(attempts))
	u.errs, u.kinds = append(u.errs, err), append(u.kinds, kind)
	u.setErr = append(u.setErr, err != "" || kind != "")
	u.nextAt, u.isResult = append(u.nextAt, nextAt), append(u.isResult, isResult)
	u.setPrg, u.progs = append(u.setPrg, setPrg), append(u.progs, prog)
	u.have[id] = struct{}{}
}

// updateSQL applies a batch of writes to one job ($2) in one statement. A
// result applies only under its lease token; a progress record under its
// token, or always when its token is 0. A NextAt of 0 means now. The job
// is one value (an InitPlan), so every source row finds its item through
// the primary key (job, id) whatever the planner knows of the table's
// size: a freshly loaded job has no statistics yet.
const updateSQL = `UPDATE items i SET
	state = CASE WHEN u.is_result THEN u.state ELSE i.state END,
	attempts = CASE WHEN u.is_result AND u.attempts > 0 THEN u.attempts ELSE i.attempts END,
	err = CASE WHEN u.is_result AND u.set_err THEN u.err ELSE i.err END,
	err_kind = CASE WHEN u.is_result AND u.set_err THEN u.kind ELSE i.err_kind END,
	due = CASE WHEN NOT u.is_result THEN i.due WHEN u.state = 4 THEN CASE WHEN u.next_at = 0 THEN ` + nowSQL + ` ELSE u.next_at END ELSE 0 END,
	progress = CASE WHEN u.set_prg THEN u.prog ELSE i.progress END,
	updated = ` + nowSQL + `
FROM unnest($3::text[], $4::int8[], $5::int2[], $6::int4[], $7::text[], $8::text[], $9::bool[], $10::int8[], $11::bool[], $12::bool[], $13::bytea[])
	AS u(id, lease, state, attempts, err, kind, set_err, next_at, is_result, set_prg, prog)
WHERE i.job = (SELECT id FROM jobs WHERE name = $2) AND i.id = u.id AND
	CASE WHEN u.is_result THEN u.lease <> 0 AND i.lease = u.lease ELSE u.lease = 0 OR i.lease = u.lease END`

// commit writes one batch atomically. Writes to the same item must apply
// in order, and one UPDATE … FROM applies at most one source row per target
// row, so a write to an item already in a statement starts the next
// statement. One statement (the usual case) is atomic on its own and costs
// one round trip; several go in one transaction.
func (s *Store) commit(ctx context.Context, batch []spi.Op) error {
	var chunks []*updateCols
	cur := map[string]*updateCols{} // job -> its open statement
	chunk := func(job, id string) *updateCols {
		u := cur[job]
		if u != nil {
			if _, dup := u.have[id]; !dup {
				return u
			}
			chunks = append(chunks, u) // the item's earlier write goes first
		}
		u = &updateCols{job: job, have: map[string]struct{}{}}
		cur[job] = u
		return u
	}
	for _, op := range batch {
		for _, r := range op.Results {
			if r.Lease == 0 {
				continue // never leased: no lease token can hold it
			}
			var nextAt int64
			if r.State == checkpoint.Failed && !r.NextAt.IsZero() {
				nextAt = r.NextAt.UnixNano()
			}
			var prog []byte
			if r.Progress != nil {
				var err error
				if prog, err = groupcommit.EncodeProgress(*r.Progress); err != nil {
					return rebound.Permanent(err)
				}
			}
			chunk(r.Job, r.ID).add(r.ID, r.Lease, r.State, r.Attempts, cleanText(spi.CutErr(r.Err)), cleanText(r.ErrKind), nextAt, true, r.Progress != nil, prog)
		}
		if p := op.Prog; p != nil {
			chunk(p.Job, p.ID).add(p.ID, p.Lease, 0, 0, "", "", 0, false, true, p.Data)
		}
	}
	for _, u := range cur {
		chunks = append(chunks, u)
	}
	args := func(u *updateCols) []any {
		return []any{s.nowArg(), u.job, u.ids, u.leases, u.states, u.attempts, u.errs, u.kinds,
			u.setErr, u.nextAt, u.isResult, u.setPrg, u.progs}
	}
	switch len(chunks) {
	case 0:
		return nil // only flushes: everything before them is committed
	case 1:
		_, err := s.pool.Exec(ctx, updateSQL, args(chunks[0])...)
		return err
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	for _, c := range chunks {
		if _, err := tx.Exec(ctx, updateSQL, args(c)...); err != nil {
			return err
		}
	}
	return tx.Commit(ctx)
}
