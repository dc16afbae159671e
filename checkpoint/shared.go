package checkpoint

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"time"
)

// Validation and error helpers for stores that live in other packages
// (checkpoint/postgres), so that every store rejects the same inputs with the
// same errors.

// ValidateJobName returns an error wrapping ErrInvalid for a job name that
// no store accepts.
func ValidateJobName(name string) error { return checkJobName(name) }

// ValidateItem returns an error wrapping ErrInvalid for an item AddItems
// must refuse (empty or long ID, oversized payload).
func ValidateItem(it Item) error { return checkItem(it) }

// ValidateLease returns an error wrapping ErrInvalid for Lease arguments
// out of range.
func ValidateLease(n int, ttl time.Duration) error { return checkLease(n, ttl) }

// ValidateResult returns an error wrapping ErrInvalid for a Result Complete
// must refuse.
func ValidateResult(r Result) error { return checkResult(r) }

// ValidateProgress returns an error wrapping ErrInvalid for a Progress
// record that is too large.
func ValidateProgress(p Progress) error { return checkProgress(&p) }

// NewJobID returns a fresh Job.ID: 128 bits from crypto/rand as 32 hex
// digits. Stores draw one for every job they create.
func NewJobID() string {
	var b [16]byte
	rand.Read(b[:]) // never fails (crypto/rand: it crashes the program instead)
	return hex.EncodeToString(b[:])
}

// CutErr bounds an error text to MaxErrLen bytes, keeping valid UTF-8.
func CutErr(s string) string { return cutErr(s) }

// ManifestChangedError is the error OpenJob returns when the stored JobMeta
// (have) differs from the one given (want); it wraps ErrManifestChanged.
func ManifestChangedError(name string, have, want JobMeta) error {
	return manifestChanged(name, have, want)
}

// NoJobError is the error for a job that does not exist; it wraps ErrNoJob.
func NoJobError(name string) error { return noJob(name) }

// LeaseLostError is the error for a lease that no longer holds its item; it
// wraps ErrLeaseLost.
func LeaseLostError(job, id string, lease int64) error { return leaseLost(job, id, lease) }

// JobLocker is implemented by stores that several processes share.
// job.LoadManifest holds the lock while it loads a manifest, so that workers
// starting together load it once.
type JobLocker interface {
	// LockJob waits until no other holder (in any process) has the job's
	// lock, takes it, and returns the function that releases it.
	LockJob(ctx context.Context, job string) (unlock func(), err error)
}

// WorkerStat is one worker's share of a job, as a shared store knows it.
type WorkerStat struct {
	// Worker is the name the worker leases under (job.Config.Worker).
	Worker string `json:"worker"`
	// Leased is how many items the worker holds under a lease that has not
	// expired.
	Leased int64 `json:"leased"`
	// Done is how many Done items the worker finished.
	Done int64 `json:"done"`
	// FirstDone is the earliest update time of those Done items.
	FirstDone time.Time `json:"first_done,omitzero"`
	// LastDone is the latest update time of those Done items:
	// Done / (LastDone - FirstDone) is the worker's rate.
	LastDone time.Time `json:"last_done,omitzero"`
	// LastActive is the latest update of any item the worker leased: a
	// lease, a heartbeat, a result.
	LastActive time.Time `json:"last_active,omitzero"`
}

// Rate returns the worker's items per second over its Done items, or 0.
func (w WorkerStat) Rate() float64 {
	if d := w.LastDone.Sub(w.FirstDone).Seconds(); d > 0 {
		return float64(w.Done) / d
	}
	return 0
}

// WorkerLister is implemented by stores that many workers share, so that a
// status display can show who does the work.
type WorkerLister interface {
	// Workers lists the workers that have leased items of the job, busiest
	// first.
	Workers(ctx context.Context, job string) ([]WorkerStat, error)
}
