// Package spi holds what the checkpoint stores (memory, sqlite, postgres)
// share and users do not need: argument validation, so that every store
// rejects the same inputs with the same errors; the errors the contract
// names, worded once; job IDs; and the store clock.
package spi

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/rebound-go/rebound"
	"github.com/rebound-go/rebound/checkpoint"
)

// Now returns the store's current time, in UTC: the Config's Clock, or the
// real clock when it is nil.
func Now(cfg checkpoint.Config) time.Time {
	if cfg.Clock != nil {
		return cfg.Clock.Now().UTC()
	}
	return time.Now().UTC()
}

// ValidateJobName returns an error wrapping ErrInvalid for a job name that
// no store accepts.
func ValidateJobName(name string) error {
	if name == "" || len(name) > checkpoint.MaxIDLen {
		return fmt.Errorf("%w: job name must be 1..%d bytes, got %d", checkpoint.ErrInvalid, checkpoint.MaxIDLen, len(name))
	}
	return nil
}

// ValidateItem returns an error wrapping ErrInvalid for an item AddItems
// must refuse (empty or long ID, oversized payload).
func ValidateItem(it checkpoint.Item) error {
	if it.ID == "" || len(it.ID) > checkpoint.MaxIDLen {
		return fmt.Errorf("%w: item ID must be 1..%d bytes, got %d", checkpoint.ErrInvalid, checkpoint.MaxIDLen, len(it.ID))
	}
	if len(it.Payload) > checkpoint.MaxPayloadLen {
		return fmt.Errorf("%w: item %q: payload of %d bytes exceeds %d", checkpoint.ErrInvalid, it.ID, len(it.Payload), checkpoint.MaxPayloadLen)
	}
	return nil
}

// ValidateLease returns an error wrapping ErrInvalid for Lease arguments
// out of range.
func ValidateLease(n int, ttl time.Duration) error {
	if n < 1 {
		return fmt.Errorf("%w: lease count %d < 1", checkpoint.ErrInvalid, n)
	}
	if ttl <= 0 {
		return fmt.Errorf("%w: lease TTL %v <= 0", checkpoint.ErrInvalid, ttl)
	}
	return nil
}

// ValidateProgress returns an error wrapping ErrInvalid for a Progress
// record that is too large.
func ValidateProgress(p checkpoint.Progress) error {
	if len(p.Extra) > checkpoint.MaxProgressExtraLen {
		return fmt.Errorf("%w: progress extra of %d bytes exceeds %d", checkpoint.ErrInvalid, len(p.Extra), checkpoint.MaxProgressExtraLen)
	}
	return nil
}

// ValidateResult returns an error wrapping ErrInvalid for a Result Complete
// must refuse.
func ValidateResult(r checkpoint.Result) error {
	switch r.State {
	case checkpoint.Done, checkpoint.Failed, checkpoint.Dead:
	default:
		return fmt.Errorf("%w: result for item %q has state %v, want done, failed or dead", checkpoint.ErrInvalid, r.ID, r.State)
	}
	if r.Attempts < 0 {
		return fmt.Errorf("%w: result for item %q has %d attempts", checkpoint.ErrInvalid, r.ID, r.Attempts)
	}
	if r.Progress != nil {
		return ValidateProgress(*r.Progress)
	}
	return nil
}

// NewJobID returns a fresh Job.ID: 128 bits from crypto/rand as 32 hex
// digits. Stores draw one for every job they create.
func NewJobID() string {
	var b [16]byte
	rand.Read(b[:]) // never fails (crypto/rand: it crashes the program instead)
	return hex.EncodeToString(b[:])
}

// CutErr bounds an error text to MaxErrLen bytes, keeping valid UTF-8.
func CutErr(s string) string {
	if len(s) <= checkpoint.MaxErrLen {
		return s
	}
	i := checkpoint.MaxErrLen
	for i > 0 && s[i]&0xC0 == 0x80 { // do not split a UTF-8 sequence
		i--
	}
	return s[:i]
}

// ManifestChangedError is the error OpenJob returns when the stored JobMeta
// (have) differs from the one given (want); it wraps ErrManifestChanged.
//
// Its advice must not cost an item twice: a job's idempotency keys come from
// its ID, so a new job (another name, or the same one after Restart) sends
// its items under new keys, and a server that deduplicates cannot recognise
// the items the old job already did.
func ManifestChangedError(name string, have, want checkpoint.JobMeta) error {
	return fmt.Errorf("%w: job %q was started from a manifest with fingerprint %q (%d items), this run has %q (%d items); "+
		"a started job's items cannot change. To send new requests, put only the new lines in a new manifest and run that as a job of its own. "+
		"Running this edited manifest as a new job (another name, or this one restarted) would send its items under new idempotency keys, "+
		"so items this job already did would be done again",
		checkpoint.ErrManifestChanged, name, have.Fingerprint, have.Total, want.Fingerprint, want.Total)
}

// NoJobError is the error for a job that does not exist; it wraps ErrNoJob.
func NoJobError(name string) error { return fmt.Errorf("%w: %q", checkpoint.ErrNoJob, name) }

// NoItemError is the error for an item that does not exist; it wraps
// ErrNoItem.
func NoItemError(job, id string) error {
	return fmt.Errorf("%w: job %q item %q", checkpoint.ErrNoItem, job, id)
}

// LeaseLostError is the error for a lease that no longer holds its item; it
// wraps ErrLeaseLost.
func LeaseLostError(job, id string, lease int64) error {
	return fmt.Errorf("%w: job %q item %q lease %d", checkpoint.ErrLeaseLost, job, id, lease)
}

// ValidateConfig returns a *rebound.ConfigError for a Config field whose
// negative value has no meaning (QueueSize, MaxBatch); every store's
// constructor calls it first.
func ValidateConfig(cfg checkpoint.Config) error {
	if cfg.QueueSize < 0 {
		return &rebound.ConfigError{Field: "checkpoint.Config.QueueSize", Reason: "negative"}
	}
	if cfg.MaxBatch < 0 {
		return &rebound.ConfigError{Field: "checkpoint.Config.MaxBatch", Reason: "negative"}
	}
	return nil
}

// UnixNano is how stores keep a time: Unix nanoseconds, 0 for the zero time.
func UnixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// FromNano reads a time kept by UnixNano, in UTC.
func FromNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// CountState adds one row of a SQL store's per-state count to st: n items
// in state, their attempts, and for Done the first and last completion (unix
// ns).
func CountState(st *checkpoint.Stats, state checkpoint.ItemState, n, attempts, first, last int64) {
	st.Attempts += attempts
	switch state {
	case checkpoint.Pending:
		st.Pending = n
	case checkpoint.Leased:
		st.Leased = n
	case checkpoint.Done:
		st.Done, st.FirstDone, st.LastDone = n, FromNano(first), FromNano(last)
	case checkpoint.Failed:
		st.Failed = n
	case checkpoint.Dead:
		st.Dead = n
	}
}
