package spi

import (
	"github.com/rebound-go/rebound/checkpoint"
	"github.com/rebound-go/rebound/checkpoint/internal/groupcommit"
)

// Op is one hand-over to a store's group committer: the results of one
// Complete call, or one SaveProgress record.
type Op struct {
	// Results are the outcomes of one Complete call, copied.
	Results []checkpoint.Result
	// Prog is one SaveProgress record, already encoded.
	Prog *groupcommit.ProgressOp
}

// Weight is what an Op counts toward a store's MaxBatch: its results, plus
// one so that progress records count too.
func Weight(op Op) int { return len(op.Results) + 1 }

// CompleteOp validates the results of a Complete call and copies them into
// an Op, since the caller may reuse its slice. ok is false when there is
// nothing to send: an error, or no results.
func CompleteOp(results []checkpoint.Result) (op Op, ok bool, err error) {
	for _, r := range results {
		if err := ValidateResult(r); err != nil {
			return Op{}, false, err
		}
	}
	if len(results) == 0 {
		return Op{}, false, nil
	}
	return Op{Results: append([]checkpoint.Result(nil), results...)}, true, nil
}

// ProgressOp validates a SaveProgress record and encodes it into an Op.
func ProgressOp(job, id string, lease int64, p checkpoint.Progress) (Op, error) {
	if err := ValidateProgress(p); err != nil {
		return Op{}, err
	}
	prog, err := groupcommit.NewProgressOp(job, id, lease, p)
	if err != nil {
		return Op{}, err
	}
	return Op{Prog: prog}, nil
}
