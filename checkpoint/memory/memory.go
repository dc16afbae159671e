// Package memory is a checkpoint store that keeps everything in memory, for
// tests, benchmarks and jobs that need not survive the process. It passes
// the same conformance suite (checkpoint/storetest) as the durable stores.
//
// It is a separate implementation of the leasing rules rather than SQLite
// in ":memory:": a program that keeps its jobs in memory then links no
// database engine (about 6 MB), its Lease is O(n log N) without SQL, and
// the conformance suite, which all three stores pass, is what keeps the
// rules one.
package memory

import (
	"bytes"
	"container/heap"
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/rebound-go/rebound/checkpoint"
	"github.com/rebound-go/rebound/checkpoint/internal/spi"
)

// Store is a checkpoint.Store that keeps everything in memory, for tests and
// benchmarks. It has the same semantics as the durable stores, except that
// nothing survives the process: every write is "durable" (visible) as soon as
// its method returns, and Flush only reports whether the store is closed.
// Lease is O(n log N) through per-state heaps, so benchmarks against it are
// fair. Create it with New; it is safe for concurrent use.
//
// It is also a checkpoint.RunLocker and a checkpoint.Reporter.
type Store struct {
	cfg checkpoint.Config

	mu     sync.Mutex
	closed bool
	jobs   map[string]*memJob
	token  int64 // last lease token handed out
	seq    int64 // insertion counter: orders pending items as added
}

type memJob struct {
	job   checkpoint.Job
	items map[string]*memItem
	// Queues of leasable items. Entries are not removed when an item
	// changes state; an entry whose version is stale is skipped (lazy
	// deletion keeps every state change O(log N)).
	pending, failed, leased memQueue
	// open counts the items that are not Done or Dead, so Unfinished
	// answers without walking the job.
	open int64
}

// final reports whether an item in state st is finished (Done or Dead):
// nothing brings it back but RetryDead.
func final(st checkpoint.ItemState) bool { return st == checkpoint.Done || st == checkpoint.Dead }

type memItem struct {
	it  checkpoint.Item
	seq int64
	ver int64
}

type memEntry struct {
	due int64 // unix nanoseconds; 0 for pending
	seq int64
	ver int64
	m   *memItem
}

type memQueue []memEntry

func (q memQueue) Len() int { return len(q) }
func (q memQueue) Less(i, j int) bool {
	if q[i].due != q[j].due {
		return q[i].due < q[j].due
	}
	return q[i].seq < q[j].seq
}
func (q memQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *memQueue) Push(x any)   { *q = append(*q, x.(memEntry)) }
func (q *memQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}

// New returns an empty in-memory store. Only cfg.Clock is used.
func New(cfg checkpoint.Config) *Store {
	return &Store{cfg: cfg, jobs: make(map[string]*memJob)}
}

var (
	_ checkpoint.Store     = (*Store)(nil)
	_ checkpoint.Reporter  = (*Store)(nil)
	_ checkpoint.RunLocker = (*Store)(nil)
)

// TryLockRun implements checkpoint.RunLocker. It always succeeds: a memory
// store lives in one process and dies with it, so the only runs that could
// hold its leases are this process's own, and the run lock is re-entrant
// per store value in every store.
func (m *Store) TryLockRun(job string) (func(), error) { return func() {}, nil }

func cloneBytes(b []byte) []byte {
	if b == nil {
		return nil
	}
	return bytes.Clone(b)
}

func cloneItem(it checkpoint.Item) checkpoint.Item {
	it.Payload = cloneBytes(it.Payload)
	it.Progress.Extra = cloneBytes(it.Progress.Extra)
	return it
}

// job returns the named job; the caller holds m.mu.
func (m *Store) job(name string) (*memJob, error) {
	if m.closed {
		return nil, checkpoint.ErrClosed
	}
	j := m.jobs[name]
	if j == nil {
		return nil, spi.NoJobError(name)
	}
	return j, nil
}

// enqueue puts the item on the queue of its (new) state; the caller holds
// m.mu and has just bumped m.ver.
func (j *memJob) enqueue(mi *memItem) {
	e := memEntry{due: spi.UnixNano(mi.it.Due), seq: mi.seq, ver: mi.ver, m: mi}
	switch mi.it.State {
	case checkpoint.Pending:
		e.due = 0
		heap.Push(&j.pending, e)
	case checkpoint.Failed:
		heap.Push(&j.failed, e)
	case checkpoint.Leased:
		heap.Push(&j.leased, e)
	}
}

// OpenJob implements checkpoint.Store.
func (m *Store) OpenJob(ctx context.Context, name string, meta checkpoint.JobMeta) (checkpoint.Job, error) {
	if err := spi.ValidateJobName(name); err != nil {
		return checkpoint.Job{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return checkpoint.Job{}, checkpoint.ErrClosed
	}
	if j := m.jobs[name]; j != nil {
		if j.job.Meta != meta {
			return checkpoint.Job{}, spi.ManifestChangedError(name, j.job.Meta, meta)
		}
		out := j.job
		out.Resumed = true
		return out, nil
	}
	j := &memJob{
		job:   checkpoint.Job{Name: name, ID: spi.NewJobID(), Meta: meta, Created: spi.Now(m.cfg)},
		items: make(map[string]*memItem),
	}
	m.jobs[name] = j
	return j.job, nil
}

// Job implements checkpoint.Store.
func (m *Store) Job(ctx context.Context, name string) (checkpoint.Job, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	j, err := m.job(name)
	if err != nil {
		return checkpoint.Job{}, err
	}
	out := j.job
	out.Resumed = true
	return out, nil
}

// Restart implements checkpoint.Store.
func (m *Store) Restart(ctx context.Context, name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return checkpoint.ErrClosed
	}
	delete(m.jobs, name)
	return nil
}

// AddItems implements checkpoint.Store.
func (m *Store) AddItems(ctx context.Context, job string, items []checkpoint.Item) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	j, err := m.job(job)
	if err != nil {
		return err
	}
	if t := j.job.Meta.Total; t > 0 && j.job.Items+int64(len(items)) > t {
		return fmt.Errorf("%w: job %q: adding %d items to %d would exceed its total of %d", checkpoint.ErrInvalid, job, len(items), j.job.Items, t)
	}
	seen := make(map[string]struct{}, len(items))
	for _, it := range items {
		if err := spi.ValidateItem(it); err != nil {
			return err
		}
		_, dupBatch := seen[it.ID]
		if _, dupJob := j.items[it.ID]; dupJob || dupBatch {
			return fmt.Errorf("%w: job %q: item %q", checkpoint.ErrDuplicateID, job, it.ID)
		}
		seen[it.ID] = struct{}{}
	}
	now := spi.Now(m.cfg)
	for _, it := range items {
		m.seq++
		mi := &memItem{seq: m.seq, it: checkpoint.Item{
			Job: job, ID: it.ID, Payload: cloneBytes(it.Payload), State: checkpoint.Pending,
			Created: now, Updated: now,
		}}
		j.items[it.ID] = mi
		j.enqueue(mi)
	}
	j.job.Items += int64(len(items))
	j.open += int64(len(items))
	return nil
}

// Lease implements checkpoint.Store.
func (m *Store) Lease(ctx context.Context, job, worker string, n int, ttl time.Duration) ([]checkpoint.Item, error) {
	if err := spi.ValidateLease(n, ttl); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	j, err := m.job(job)
	if err != nil {
		return nil, err
	}
	now := spi.Now(m.cfg)
	nowN := now.UnixNano()
	m.token++ // one token per call, as in the SQLite store
	var out []checkpoint.Item
	var classStart int
	// take pops valid entries from q while they are due.
	take := func(q *memQueue, state checkpoint.ItemState) {
		for len(out) < n && q.Len() > 0 {
			e := (*q)[0]
			if e.ver != e.m.ver || e.m.it.State != state {
				heap.Pop(q) // stale entry
				continue
			}
			if state != checkpoint.Pending && e.due > nowN {
				return // the earliest is not due yet
			}
			heap.Pop(q)
			mi := e.m
			mi.ver++
			mi.it.State = checkpoint.Leased
			mi.it.Worker = worker
			mi.it.Lease = m.token
			mi.it.Due = now.Add(ttl)
			mi.it.Attempts++
			mi.it.Updated = now
			j.enqueue(mi)
			out = append(out, cloneItem(mi.it))
		}
	}
	// Each class in added order, as SQLite returns it.
	for _, q := range []struct {
		q     *memQueue
		state checkpoint.ItemState
	}{{&j.leased, checkpoint.Leased}, {&j.failed, checkpoint.Failed}, {&j.pending, checkpoint.Pending}} {
		classStart = len(out)
		take(q.q, q.state)
		class := out[classStart:]
		sort.Slice(class, func(a, b int) bool { return j.items[class[a].ID].seq < j.items[class[b].ID].seq })
	}
	return out, nil
}

// leased returns the item that lease holds, or an error wrapping
// checkpoint.ErrLeaseLost; the caller holds m.mu.
func (m *Store) leased(job, id string, lease int64) (*memJob, *memItem, error) {
	j, err := m.job(job)
	if err != nil {
		return nil, nil, err
	}
	mi := j.items[id]
	if mi == nil || lease == 0 || mi.it.Lease != lease || mi.it.State != checkpoint.Leased {
		return nil, nil, spi.LeaseLostError(job, id, lease)
	}
	return j, mi, nil
}

// Extend implements checkpoint.Store.
func (m *Store) Extend(ctx context.Context, job, id string, lease int64, ttl time.Duration) error {
	if ttl <= 0 {
		return fmt.Errorf("%w: lease TTL %v <= 0", checkpoint.ErrInvalid, ttl)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	j, mi, err := m.leased(job, id, lease)
	if err != nil {
		return err
	}
	now := spi.Now(m.cfg)
	mi.ver++
	mi.it.Due = now.Add(ttl)
	mi.it.Updated = now
	j.enqueue(mi)
	return nil
}

// Release implements checkpoint.Store.
func (m *Store) Release(ctx context.Context, job, id string, lease int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	j, mi, err := m.leased(job, id, lease)
	if err != nil {
		return err
	}
	mi.ver++
	mi.it.State = checkpoint.Pending
	mi.it.Due = time.Time{}
	mi.it.Attempts = max(mi.it.Attempts-1, 0)
	mi.it.Updated = spi.Now(m.cfg)
	j.enqueue(mi)
	return nil
}

// Defer implements checkpoint.Store.
func (m *Store) Defer(ctx context.Context, job, id string, lease int64, next time.Time, err, errKind string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	j, mi, e := m.leased(job, id, lease)
	if e != nil {
		return e
	}
	now := spi.Now(m.cfg)
	mi.ver++
	mi.it.State = checkpoint.Failed
	mi.it.Due = now
	if !next.IsZero() {
		mi.it.Due = next.UTC()
	}
	mi.it.Attempts = max(mi.it.Attempts-1, 0)
	if err != "" || errKind != "" {
		mi.it.Err, mi.it.ErrKind = spi.CutErr(err), errKind
	}
	mi.it.Updated = now
	j.enqueue(mi)
	return nil
}

// Reclaim implements checkpoint.RunLocker.
func (m *Store) Reclaim(ctx context.Context, job string) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	j, err := m.job(job)
	if err != nil {
		return 0, err
	}
	now := spi.Now(m.cfg)
	n := 0
	for _, e := range j.leased {
		mi := e.m
		if e.ver != mi.ver || mi.it.State != checkpoint.Leased {
			continue
		}
		mi.ver++
		mi.it.State = checkpoint.Pending
		mi.it.Due = time.Time{}
		mi.it.Updated = now
		j.enqueue(mi)
		n++
	}
	j.leased = nil // every entry is now stale
	return n, nil
}

// Complete implements checkpoint.Store. The results are applied before it returns.
func (m *Store) Complete(ctx context.Context, results []checkpoint.Result) error {
	for _, r := range results {
		if err := spi.ValidateResult(r); err != nil {
			return err
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return checkpoint.ErrClosed
	}
	now := spi.Now(m.cfg)
	for _, r := range results {
		j := m.jobs[r.Job]
		if j == nil {
			continue
		}
		mi := j.items[r.ID]
		if mi == nil || r.Lease == 0 || mi.it.Lease != r.Lease {
			continue // lease lost: the item belongs to someone else now
		}
		mi.ver++
		// A result may apply twice (handed over again under the same
		// token), so count the change of state, not the result.
		if final(mi.it.State) && !final(r.State) {
			j.open++
		} else if !final(mi.it.State) && final(r.State) {
			j.open--
		}
		mi.it.State = r.State
		if r.Attempts > 0 {
			mi.it.Attempts = r.Attempts
		}
		if r.Err != "" || r.ErrKind != "" {
			mi.it.Err, mi.it.ErrKind = spi.CutErr(r.Err), r.ErrKind
		}
		mi.it.Due = time.Time{}
		if r.State == checkpoint.Failed {
			mi.it.Due = now
			if !r.NextAt.IsZero() {
				mi.it.Due = r.NextAt.UTC()
			}
		}
		if r.Progress != nil {
			p := *r.Progress
			p.Extra = cloneBytes(p.Extra)
			mi.it.Progress = p
		}
		mi.it.Updated = now
		j.enqueue(mi)
	}
	return nil
}

// SaveProgress implements checkpoint.Store. The record is applied before it returns.
func (m *Store) SaveProgress(ctx context.Context, job, id string, lease int64, p checkpoint.Progress) error {
	if err := spi.ValidateProgress(p); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return checkpoint.ErrClosed
	}
	j := m.jobs[job]
	if j == nil {
		return nil
	}
	mi := j.items[id]
	if mi == nil || (lease != 0 && mi.it.Lease != lease) {
		return nil
	}
	p.Extra = cloneBytes(p.Extra)
	mi.it.Progress = p
	mi.it.Updated = spi.Now(m.cfg)
	return nil
}

// Flush implements checkpoint.Store; everything is applied already.
func (m *Store) Flush(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return checkpoint.ErrClosed
	}
	return nil
}

// Item implements checkpoint.Store.
func (m *Store) Item(ctx context.Context, job, id string) (checkpoint.Item, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	j, err := m.job(job)
	if err != nil {
		return checkpoint.Item{}, err
	}
	mi := j.items[id]
	if mi == nil {
		return checkpoint.Item{}, spi.NoItemError(job, id)
	}
	return cloneItem(mi.it), nil
}

// Stats implements checkpoint.Store. It walks all items of the job.
func (m *Store) Stats(ctx context.Context, job string) (checkpoint.Stats, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	j, err := m.job(job)
	if err != nil {
		return checkpoint.Stats{}, err
	}
	s := checkpoint.Stats{Job: j.job}
	s.Job.Resumed = true // as Job and the other stores report a stored job
	for _, mi := range j.items {
		s.Attempts += int64(mi.it.Attempts)
		switch mi.it.State {
		case checkpoint.Pending:
			s.Pending++
		case checkpoint.Leased:
			s.Leased++
		case checkpoint.Failed:
			s.Failed++
		case checkpoint.Dead:
			s.Dead++
		case checkpoint.Done:
			s.Done++
			if u := mi.it.Updated; s.FirstDone.IsZero() || u.Before(s.FirstDone) {
				s.FirstDone = u
			}
			if u := mi.it.Updated; u.After(s.LastDone) {
				s.LastDone = u
			}
		}
	}
	return s, nil
}

// Unfinished implements checkpoint.Store in O(1): the job keeps the count.
func (m *Store) Unfinished(ctx context.Context, job string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	j, err := m.job(job)
	if err != nil {
		return false, err
	}
	return j.open > 0, nil
}

// TopErrors implements checkpoint.Reporter.
func (m *Store) TopErrors(ctx context.Context, job string, n int) ([]checkpoint.ErrorCount, error) {
	if n < 1 {
		return nil, fmt.Errorf("%w: n %d < 1", checkpoint.ErrInvalid, n)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	j, err := m.job(job)
	if err != nil {
		return nil, err
	}
	type key struct{ kind, err string }
	counts := make(map[key]int64)
	for _, mi := range j.items {
		if mi.it.State == checkpoint.Failed || mi.it.State == checkpoint.Dead {
			counts[key{mi.it.ErrKind, mi.it.Err}]++
		}
	}
	out := make([]checkpoint.ErrorCount, 0, len(counts))
	for k, c := range counts {
		out = append(out, checkpoint.ErrorCount{Kind: k.kind, Err: k.err, Count: c})
	}
	sortErrorCounts(out)
	if len(out) > n {
		out = out[:n]
	}
	return out, nil
}

// sortErrorCounts orders by count, most first, then by kind and text so
// every store returns ties in the same order.
func sortErrorCounts(out []checkpoint.ErrorCount) {
	sort.Slice(out, func(a, b int) bool {
		if out[a].Count != out[b].Count {
			return out[a].Count > out[b].Count
		}
		if out[a].Kind != out[b].Kind {
			return out[a].Kind < out[b].Kind
		}
		return out[a].Err < out[b].Err
	})
}

// Dead implements checkpoint.Reporter.
func (m *Store) Dead(ctx context.Context, job string, limit int) ([]checkpoint.Item, error) {
	if limit < 1 {
		return nil, fmt.Errorf("%w: limit %d < 1", checkpoint.ErrInvalid, limit)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	j, err := m.job(job)
	if err != nil {
		return nil, err
	}
	var dead []*memItem
	for _, mi := range j.items {
		if mi.it.State == checkpoint.Dead {
			dead = append(dead, mi)
		}
	}
	sort.Slice(dead, func(a, b int) bool { return dead[a].seq < dead[b].seq })
	if len(dead) > limit {
		dead = dead[:limit]
	}
	out := make([]checkpoint.Item, len(dead))
	for i, mi := range dead {
		out[i] = cloneItem(mi.it)
	}
	return out, nil
}

// RetryDead implements checkpoint.Reporter.
func (m *Store) RetryDead(ctx context.Context, job string) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	j, err := m.job(job)
	if err != nil {
		return 0, err
	}
	now := spi.Now(m.cfg)
	var n int64
	for _, mi := range j.items {
		if mi.it.State != checkpoint.Dead {
			continue
		}
		mi.ver++
		mi.it.State = checkpoint.Pending
		j.open++
		mi.it.Attempts = 0
		mi.it.Due = time.Time{}
		mi.it.Updated = now
		j.enqueue(mi)
		n++
	}
	return n, nil
}

// Close implements checkpoint.Store.
func (m *Store) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return checkpoint.ErrClosed
	}
	m.closed = true
	m.jobs = nil
	return nil
}
