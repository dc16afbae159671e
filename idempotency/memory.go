package idempotency

import (
	"context"
	"errors"
	"sync"
	"time"
)

// ErrNotOwner is returned by Store.Complete when the token no longer owns
// the key, because its lock timed out and another request claimed it.
var ErrNotOwner = errors.New("idempotency: key is no longer owned by this request")

// MemoryStore is a Store in process memory, for tests and single-process
// servers that accept losing their records on restart. It is safe for
// concurrent use. Its zero value is not usable: call NewMemoryStore.
type MemoryStore struct {
	mu   sync.Mutex
	recs map[memKey]*memRecord
}

type memKey struct{ scope, key string }

type memRecord struct {
	fingerprint string
	token       string
	lockedUntil time.Time
	expiresAt   time.Time
	done        bool
	resp        *Response
}

// NewMemoryStore returns an empty MemoryStore.
func NewMemoryStore() *MemoryStore {
	return &MemoryStore{recs: make(map[memKey]*memRecord)}
}

// Claim implements Store.
func (s *MemoryStore) Claim(_ context.Context, req ClaimRequest) (Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := memKey{req.Scope, req.Key}
	if r, ok := s.recs[k]; ok && !r.free(req.Now) {
		if r.done {
			return Record{State: Completed, Fingerprint: r.fingerprint, Response: cloneResponse(r.resp)}, nil
		}
		return Record{State: InFlight, Fingerprint: r.fingerprint}, nil
	}
	s.recs[k] = &memRecord{
		fingerprint: req.Fingerprint,
		token:       req.Token,
		lockedUntil: req.LockedUntil,
		expiresAt:   req.ExpiresAt,
	}
	return Record{State: Claimed, Fingerprint: req.Fingerprint}, nil
}

func (r *memRecord) free(now time.Time) bool {
	return !now.Before(r.expiresAt) || (!r.done && !now.Before(r.lockedUntil))
}

// Complete implements Store.
func (s *MemoryStore) Complete(_ context.Context, scope, key, token string, resp *Response, expiresAt time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.recs[memKey{scope, key}]
	if !ok || r.token != token || r.done {
		return ErrNotOwner
	}
	r.done = true
	r.resp = cloneResponse(resp)
	r.expiresAt = expiresAt
	return nil
}

// Release implements Store.
func (s *MemoryStore) Release(_ context.Context, scope, key, token string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := memKey{scope, key}
	if r, ok := s.recs[k]; ok && r.token == token && !r.done {
		delete(s.recs, k)
	}
	return nil
}

// Prune implements Store.
func (s *MemoryStore) Prune(_ context.Context, now time.Time) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n int64
	for k, r := range s.recs {
		if r.free(now) {
			delete(s.recs, k)
			n++
		}
	}
	return n, nil
}

// Len returns the number of records held, expired or not.
func (s *MemoryStore) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.recs)
}

// cloneResponse copies resp so that callers never share the stored slices.
func cloneResponse(resp *Response) *Response {
	if resp == nil {
		return nil
	}
	return &Response{Status: resp.Status, Header: resp.Header.Clone(), Body: append([]byte(nil), resp.Body...)}
}
