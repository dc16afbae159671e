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

// ErrStoreFull is returned by Store.Claim when the store has no room for
// another record and none it may evict: every record it holds belongs to a
// request still in flight. The middleware answers 503 with Retry-After
// (ProblemStoreFull) and does not run the handler.
var ErrStoreFull = errors.New("idempotency: store is full of requests in flight")

// Bounds of a MemoryStore whose MaxRecords or MaxBytes is zero.
const (
	DefaultMemoryMaxRecords = 100_000  // MemoryStore.MaxRecords
	DefaultMemoryMaxBytes   = 64 << 20 // MemoryStore.MaxBytes, 64 MiB
)

// memRecordOverhead approximates what a record costs beyond its strings and
// response: the struct, the map entry, the string and slice headers.
const memRecordOverhead = 256

// MemoryStore is a Store in process memory, for tests and single-process
// servers that accept losing their records on restart. It is safe for
// concurrent use, and its zero value is an empty store with the default
// bounds.
//
// Memory is bounded, so that clients (unauthenticated ones included) cannot
// grow it without limit by sending new keys. When a new record would pass
// MaxRecords or MaxBytes, completed records are evicted, the oldest
// completion first. Evicting one forgets it before its TTL: a retry with
// that key runs the handler again. Size the bounds for the retries you
// expect to deduplicate, or use SQLStore. Records of requests in flight are
// never evicted (their handlers are running); when they alone fill the
// store, Claim returns ErrStoreFull and the middleware answers 503 until
// some finish. A response that does not fit even after evicting every
// completed record is recorded as processed but not stored
// (ProblemNotStored).
type MemoryStore struct {
	// MaxRecords bounds the number of records. Zero means
	// DefaultMemoryMaxRecords. Set it before the store is first used.
	MaxRecords int
	// MaxBytes bounds the bytes the records take, as counted by Size: the
	// scope, key, fingerprint and token of each, the stored responses'
	// bodies and headers, and a fixed overhead per record. Zero means
	// DefaultMemoryMaxBytes. Set it before the store is first used.
	MaxBytes int64

	mu    sync.Mutex
	recs  map[memKey]*memRecord
	bytes int64
	// Records in flight in claim order, completed records in completion
	// order: the fronts are the oldest, the first to go.
	inflight, done memList
}

type memKey struct{ scope, key string }

type memRecord struct {
	k           memKey
	fingerprint string
	token       string
	lockedUntil time.Time
	expiresAt   time.Time
	done        bool
	resp        *Response
	size        int64
	prev, next  *memRecord
}

// memList is an intrusive doubly linked list: linking a record costs no
// allocation.
type memList struct{ head, tail *memRecord }

func (l *memList) push(r *memRecord) {
	r.prev, r.next = l.tail, nil
	if l.tail != nil {
		l.tail.next = r
	} else {
		l.head = r
	}
	l.tail = r
}

func (l *memList) remove(r *memRecord) {
	if r.prev != nil {
		r.prev.next = r.next
	} else {
		l.head = r.next
	}
	if r.next != nil {
		r.next.prev = r.prev
	} else {
		l.tail = r.prev
	}
	r.prev, r.next = nil, nil
}

// NewMemoryStore returns an empty MemoryStore with the default bounds, the
// same as new(MemoryStore).
func NewMemoryStore() *MemoryStore {
	return &MemoryStore{}
}

func (s *MemoryStore) limits() (records int, bytes int64) {
	records, bytes = s.MaxRecords, s.MaxBytes
	if records <= 0 {
		records = DefaultMemoryMaxRecords
	}
	if bytes <= 0 {
		bytes = DefaultMemoryMaxBytes
	}
	return records, bytes
}

// Claim implements Store.
func (s *MemoryStore) Claim(_ context.Context, req ClaimRequest) (Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.recs == nil {
		s.recs = make(map[memKey]*memRecord)
	}
	k := memKey{req.Scope, req.Key}
	if r, ok := s.recs[k]; ok {
		if !r.free(req.Now) {
			if r.done {
				return Record{State: Completed, Fingerprint: r.fingerprint, Response: cloneResponse(r.resp)}, nil
			}
			return Record{State: InFlight, Fingerprint: r.fingerprint}, nil
		}
		s.drop(r)
	}
	size := memRecordOverhead + int64(len(req.Scope)+len(req.Key)+len(req.Fingerprint)+len(req.Token))
	if !s.makeRoom(size, req.Now) {
		return Record{}, ErrStoreFull
	}
	r := &memRecord{
		k:           k,
		fingerprint: req.Fingerprint,
		token:       req.Token,
		lockedUntil: req.LockedUntil,
		expiresAt:   req.ExpiresAt,
		size:        size,
	}
	s.recs[k] = r
	s.inflight.push(r)
	s.bytes += size
	return Record{State: Claimed, Fingerprint: req.Fingerprint}, nil
}

// makeRoom evicts until one more record of size bytes fits: completed
// records oldest first, then in-flight records whose lock has timed out
// (abandoned by a crashed request), never a live in-flight one.
func (s *MemoryStore) makeRoom(size int64, now time.Time) bool {
	maxRecords, maxBytes := s.limits()
	for len(s.recs)+1 > maxRecords || s.bytes+size > maxBytes {
		switch {
		case s.done.head != nil:
			s.drop(s.done.head)
		case s.inflight.head != nil && s.inflight.head.free(now):
			s.drop(s.inflight.head)
		default:
			return false
		}
	}
	return true
}

// drop forgets r.
func (s *MemoryStore) drop(r *memRecord) {
	if r.done {
		s.done.remove(r)
	} else {
		s.inflight.remove(r)
	}
	delete(s.recs, r.k)
	s.bytes -= r.size
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
	s.inflight.remove(r)
	r.done = true
	r.expiresAt = expiresAt
	// Make room for the response among the completed records; if it does
	// not fit even alone, keep the fact that the request ran, not its bytes.
	_, maxBytes := s.limits()
	extra := responseSize(resp)
	for s.bytes+extra > maxBytes && s.done.head != nil {
		s.drop(s.done.head)
	}
	if s.bytes+extra > maxBytes {
		resp, extra = nil, 0
	}
	r.resp = cloneResponse(resp)
	r.size += extra
	s.bytes += extra
	s.done.push(r)
	return nil
}

// responseSize is what resp adds to a record in Size's accounting.
func responseSize(resp *Response) int64 {
	if resp == nil {
		return 0
	}
	n := int64(len(resp.Body))
	for name, values := range resp.Header {
		n += int64(len(name)) + 16
		for _, v := range values {
			n += int64(len(v)) + 16
		}
	}
	return n
}

// Release implements Store.
func (s *MemoryStore) Release(_ context.Context, scope, key, token string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := s.recs[memKey{scope, key}]; ok && r.token == token && !r.done {
		s.drop(r)
	}
	return nil
}

// Prune implements Store.
func (s *MemoryStore) Prune(_ context.Context, now time.Time) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n int64
	for _, r := range s.recs {
		if r.free(now) {
			s.drop(r)
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

// Size returns the bytes the records take, as MaxBytes counts them.
func (s *MemoryStore) Size() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bytes
}

// cloneResponse copies resp so that callers never share the stored slices.
func cloneResponse(resp *Response) *Response {
	if resp == nil {
		return nil
	}
	return &Response{Status: resp.Status, Header: resp.Header.Clone(), Body: append([]byte(nil), resp.Body...)}
}
