// Group commit: results and progress records handed over by Complete and
// SaveProgress, written in one transaction per batch.

package sqlite

import (
	"context"
	"errors"
	"fmt"

	"github.com/rebound-go/rebound/checkpoint"
	"github.com/rebound-go/rebound/checkpoint/internal/groupcommit"
	"github.com/rebound-go/rebound/checkpoint/internal/spi"
)

// Complete implements checkpoint.Store. It copies results; the caller may reuse them.
func (s *Store) Complete(ctx context.Context, results []checkpoint.Result) error {
	op, ok, err := spi.CompleteOp(results)
	if !ok {
		return err
	}
	return s.gc.Send(ctx, op)
}

// SaveProgress implements checkpoint.Store.
func (s *Store) SaveProgress(ctx context.Context, job, id string, lease int64, p checkpoint.Progress) error {
	op, err := spi.ProgressOp(job, id, lease, p)
	if err != nil {
		return err
	}
	return s.gc.Send(ctx, op)
}

// Flush implements checkpoint.Store.
func (s *Store) Flush(ctx context.Context) error { return s.gc.Flush(ctx) }

// groupCommit is the committer's Commit: it writes one batch in one
// transaction (an empty batch, of flushes only, commits an empty one).
// Its error makes the store unusable, so it says so.
func (s *Store) groupCommit(batch []spi.Op) error {
	if err := s.commit(batch); err != nil {
		return fmt.Errorf("checkpoint: %s: group commit failed, its results are lost and the store is unusable (reopen it): %w", s.path, err)
	}
	return nil
}

func (s *Store) commit(batch []spi.Op) error {
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
		for _, r := range op.Results {
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
		if p := op.Prog; p != nil {
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
