package idempotency

import (
	"context"
	"net/http"
	"time"
)

// State is what a Store found for a key when the middleware tried to claim it.
type State int

const (
	// Claimed: the key was free (new, expired, or its lock had timed out)
	// and now belongs to the caller, who must Complete or Release it.
	Claimed State = iota + 1
	// InFlight: another request holds the key and has not finished yet.
	InFlight
	// Completed: a request with this key finished; Record.Response holds
	// the stored response, or is nil if the response was not kept (too
	// large to store).
	Completed
)

// String returns the state's name.
func (s State) String() string {
	switch s {
	case Claimed:
		return "claimed"
	case InFlight:
		return "in-flight"
	case Completed:
		return "completed"
	}
	return "unknown"
}

// Response is a stored response: the status, the kept headers, the body.
type Response struct {
	Status int         // the handler's status code
	Header http.Header // only the headers Config.StoredHeaders keeps
	Body   []byte      // the full body, at most Config.MaxResponseBytes
}

// ClaimRequest asks a Store to claim one key for one request.
type ClaimRequest struct {
	Scope       string    // the principal; keys of different scopes never meet
	Key         string    // the parsed Idempotency-Key
	Fingerprint string    // hash of method, path+query and body
	Token       string    // random; proves ownership to Complete and Release
	Now         time.Time // the middleware's clock
	LockedUntil time.Time // after this an in-flight claim counts as abandoned
	ExpiresAt   time.Time // after this the record is forgotten
}

// Record is the answer to a claim.
type Record struct {
	State       State     // what holds the key; Claimed means the caller now does
	Fingerprint string    // of the request that owns the key (InFlight, Completed)
	Response    *Response // Completed only; nil if the response was not stored
}

// Store keeps idempotency records. Implementations must be safe for
// concurrent use, and Claim must be atomic: of many concurrent claims of a
// free key exactly one gets Claimed. MemoryStore and SQLStore are provided;
// the shared tests in this package are the contract for others.
type Store interface {
	// Claim takes the key if it is free, that is absent, expired
	// (ExpiresAt <= req.Now) or in flight with a timed-out lock
	// (LockedUntil <= req.Now); otherwise it reports what holds it. A
	// bounded store with no room returns ErrStoreFull.
	Claim(ctx context.Context, req ClaimRequest) (Record, error)
	// Complete stores resp for a key claimed with token and keeps it until
	// expiresAt. A nil resp records that the request ran but its response
	// was not kept. If the token no longer owns the key (the lock timed
	// out and another request took it) Complete changes nothing and
	// returns ErrNotOwner.
	Complete(ctx context.Context, scope, key, token string, resp *Response, expiresAt time.Time) error
	// Release forgets a key claimed with token so a retry can run the
	// handler again. Releasing a key the token no longer owns is a no-op.
	Release(ctx context.Context, scope, key, token string) error
	// Prune deletes the records expired at now and in-flight records whose
	// lock timed out, and returns how many it deleted.
	Prune(ctx context.Context, now time.Time) (int64, error)
}
