package checkpoint

import (
	"bytes"
	"container/heap"
	"context"
	"fmt"
	"sort"
	"sync"
	"time"
)

// Memory is a Store that keeps everything in memory, for tests and
// benchmarks. It has the same semantics as the durable stores, except that
// nothing survives the process: every write is "durable" (visible) as soon as
// its method returns, and Flush only reports whether the store is closed.
// Lease is O(n log N) through per-state heaps, so benchmarks against it are
// fair. Create it with NewMemory; it is safe for concurrent use.
type Memory struct {
	opts Options

	mu     sync.Mutex
	closed bool
	jobs   map[string]*memJob
	token  int64 // last lease token handed out
	seq    int64 // insertion counter: orders pending items as added
}

type memJob struct {
	job   Job
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
func final(st State) bool { return st == Done || st == Dead }

type memItem struct {
	it  Item
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

// NewMemory returns an empty in-memory store. Only opts.Now is used.
func NewMemory(opts Options) *Memory {
	return &Memory{opts: opts, jobs: make(map[string]*memJob)}
}

var _ Store = (*Memory)(nil)

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

func cloneBytes(b []byte) []byte {
	if b == nil {
		return nil
	}
	return bytes.Clone(b)
}

func cloneItem(it Item) Item {
	it.Payload = cloneBytes(it.Payload)
	it.Progress.Extra = cloneBytes(it.Progress.Extra)
	return it
}

// job returns the named job; the caller holds m.mu.
func (m *Memory) job(name string) (*memJob, error) {
	if m.closed {
		return nil, ErrClosed
	}
	j := m.jobs[name]
	if j == nil {
		return nil, noJob(name)
	}
	return j, nil
}

// enqueue puts the item on the queue of its (new) state; the caller holds
// m.mu and has just bumped m.ver.
func (j *memJob) enqueue(mi *memItem) {
	e := memEntry{due: unixNano(mi.it.Due), seq: mi.seq, ver: mi.ver, m: mi}
	switch mi.it.State {
	case Pending:
		e.due = 0
		heap.Push(&j.pending, e)
	case Failed:
		heap.Push(&j.failed, e)
	case Leased:
		heap.Push(&j.leased, e)
	}
}

// OpenJob implements Store.
func (m *Memory) OpenJob(ctx context.Context, name string, meta JobMeta) (Job, error) {
	if err := checkJobName(name); err != nil {
		return Job{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return Job{}, ErrClosed
	}
	if j := m.jobs[name]; j != nil {
		if j.job.Meta != meta {
			return Job{}, manifestChanged(name, j.job.Meta, meta)
		}
		out := j.job
		out.Resumed = true
		return out, nil
	}
	j := &memJob{
		job:   Job{Name: name, ID: NewJobID(), Meta: meta, Created: m.opts.now().UTC()},
		items: make(map[string]*memItem),
	}
	m.jobs[name] = j
	return j.job, nil
}

// Job implements Store.
func (m *Memory) Job(ctx context.Context, name string) (Job, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	j, err := m.job(name)
	if err != nil {
		return Job{}, err
	}
	out := j.job
	out.Resumed = true
	return out, nil
}

// Restart implements Store.
func (m *Memory) Restart(ctx context.Context, name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	delete(m.jobs, name)
	return nil
}

// AddItems implements Store.
func (m *Memory) AddItems(ctx context.Context, job string, items []Item) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	j, err := m.job(job)
	if err != nil {
		return err
	}
	if t := j.job.Meta.Total; t > 0 && j.job.Items+int64(len(items)) > t {
		return fmt.Errorf("%w: job %q: adding %d items to %d would exceed its total of %d", ErrInvalid, job, len(items), j.job.Items, t)
	}
	seen := make(map[string]struct{}, len(items))
	for _, it := range items {
		if err := checkItem(it); err != nil {
			return err
		}
		_, dupBatch := seen[it.ID]
		if _, dupJob := j.items[it.ID]; dupJob || dupBatch {
			return fmt.Errorf("%w: job %q: item %q", ErrDuplicateID, job, it.ID)
		}
		seen[it.ID] = struct{}{}
	}
	now := m.opts.now().UTC()
	for _, it := range items {
		m.seq++
		mi := &memItem{seq: m.seq, it: Item{
			Job: job, ID: it.ID, Payload: cloneBytes(it.Payload), State: Pending,
			Created: now, Updated: now,
		}}
		j.items[it.ID] = mi
		j.enqueue(mi)
	}
	j.job.Items += int64(len(items))
	j.open += int64(len(items))
	return nil
}

// Lease implements Store.
func (m *Memory) Lease(ctx context.Context, job, worker string, n int, ttl time.Duration) ([]Item, error) {
	if err := checkLease(n, ttl); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	j, err := m.job(job)
	if err != nil {
		return nil, err
	}
	now := m.opts.now().UTC()
	nowN := now.UnixNano()
	m.token++ // one token per call, as in the SQLite store
	var out []Item
	var classStart int
	// take pops valid entries from q while they are due.
	take := func(q *memQueue, state State) {
		for len(out) < n && q.Len() > 0 {
			e := (*q)[0]
			if e.ver != e.m.ver || e.m.it.State != state {
				heap.Pop(q) // stale entry
				continue
			}
			if state != Pending && e.due > nowN {
				return // the earliest is not due yet
			}
			heap.Pop(q)
			mi := e.m
			mi.ver++
			mi.it.State = Leased
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
		state State
	}{{&j.leased, Leased}, {&j.failed, Failed}, {&j.pending, Pending}} {
		classStart = len(out)
		take(q.q, q.state)
		class := out[classStart:]
		sort.Slice(class, func(a, b int) bool { return j.items[class[a].ID].seq < j.items[class[b].ID].seq })
	}
	return out, nil
}

// leased returns the item that lease holds, or an error wrapping
// ErrLeaseLost; the caller holds m.mu.
func (m *Memory) leased(job, id string, lease int64) (*memJob, *memItem, error) {
	j, err := m.job(job)
	if err != nil {
		return nil, nil, err
	}
	mi := j.items[id]
	if mi == nil || lease == 0 || mi.it.Lease != lease || mi.it.State != Leased {
		return nil, nil, leaseLost(job, id, lease)
	}
	return j, mi, nil
}

// Extend implements Store.
func (m *Memory) Extend(ctx context.Context, job, id string, lease int64, ttl time.Duration) error {
	if ttl <= 0 {
		return fmt.Errorf("%w: lease TTL %v <= 0", ErrInvalid, ttl)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	j, mi, err := m.leased(job, id, lease)
	if err != nil {
		return err
	}
	now := m.opts.now().UTC()
	mi.ver++
	mi.it.Due = now.Add(ttl)
	mi.it.Updated = now
	j.enqueue(mi)
	return nil
}

// Release implements Store.
func (m *Memory) Release(ctx context.Context, job, id string, lease int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	j, mi, err := m.leased(job, id, lease)
	if err != nil {
		return err
	}
	mi.ver++
	mi.it.State = Pending
	mi.it.Due = time.Time{}
	mi.it.Attempts = max(mi.it.Attempts-1, 0)
	mi.it.Updated = m.opts.now().UTC()
	j.enqueue(mi)
	return nil
}

// Defer implements Store.
func (m *Memory) Defer(ctx context.Context, job, id string, lease int64, next time.Time, err, errKind string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	j, mi, e := m.leased(job, id, lease)
	if e != nil {
		return e
	}
	now := m.opts.now().UTC()
	mi.ver++
	mi.it.State = Failed
	mi.it.Due = now
	if !next.IsZero() {
		mi.it.Due = next.UTC()
	}
	mi.it.Attempts = max(mi.it.Attempts-1, 0)
	if err != "" || errKind != "" {
		mi.it.Err, mi.it.ErrKind = cutErr(err), errKind
	}
	mi.it.Updated = now
	j.enqueue(mi)
	return nil
}

// Reclaim implements Store.
func (m *Memory) Reclaim(ctx context.Context, job string) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	j, err := m.job(job)
	if err != nil {
		return 0, err
	}
	now := m.opts.now().UTC()
	n := 0
	for _, e := range j.leased {
		mi := e.m
		if e.ver != mi.ver || mi.it.State != Leased {
			continue
		}
		mi.ver++
		mi.it.State = Pending
		mi.it.Due = time.Time{}
		mi.it.Updated = now
		j.enqueue(mi)
		n++
	}
	j.leased = nil // every entry is now stale
	return n, nil
}

// Complete implements Store. The results are applied before it returns.
func (m *Memory) Complete(ctx context.Context, results []Result) error {
	for _, r := range results {
		if err := checkResult(r); err != nil {
			return err
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	now := m.opts.now().UTC()
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
			mi.it.Err, mi.it.ErrKind = cutErr(r.Err), r.ErrKind
		}
		mi.it.Due = time.Time{}
		if r.State == Failed {
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

// SaveProgress implements Store. The record is applied before it returns.
func (m *Memory) SaveProgress(ctx context.Context, job, id string, lease int64, p Progress) error {
	if err := checkProgress(&p); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
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
	mi.it.Updated = m.opts.now().UTC()
	return nil
}

// Flush implements Store; everything is applied already.
func (m *Memory) Flush(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	return nil
}

// Item implements Store.
func (m *Memory) Item(ctx context.Context, job, id string) (Item, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	j, err := m.job(job)
	if err != nil {
		return Item{}, err
	}
	mi := j.items[id]
	if mi == nil {
		return Item{}, fmt.Errorf("%w: job %q item %q", ErrNoItem, job, id)
	}
	return cloneItem(mi.it), nil
}

// Stats implements Store. It walks all items of the job.
func (m *Memory) Stats(ctx context.Context, job string) (Stats, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	j, err := m.job(job)
	if err != nil {
		return Stats{}, err
	}
	s := Stats{Job: j.job}
	for _, mi := range j.items {
		s.Attempts += int64(mi.it.Attempts)
		switch mi.it.State {
		case Pending:
			s.Pending++
		case Leased:
			s.Leased++
		case Failed:
			s.Failed++
		case Dead:
			s.Dead++
		case Done:
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

// Unfinished implements Store in O(1): the job keeps the count.
func (m *Memory) Unfinished(ctx context.Context, job string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	j, err := m.job(job)
	if err != nil {
		return false, err
	}
	return j.open > 0, nil
}

// TopErrors implements Store.
func (m *Memory) TopErrors(ctx context.Context, job string, n int) ([]ErrorCount, error) {
	if n < 1 {
		return nil, fmt.Errorf("%w: n %d < 1", ErrInvalid, n)
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
		if mi.it.State == Failed || mi.it.State == Dead {
			counts[key{mi.it.ErrKind, mi.it.Err}]++
		}
	}
	out := make([]ErrorCount, 0, len(counts))
	for k, c := range counts {
		out = append(out, ErrorCount{Kind: k.kind, Err: k.err, Count: c})
	}
	sortErrorCounts(out)
	if len(out) > n {
		out = out[:n]
	}
	return out, nil
}

// sortErrorCounts orders by count, most first, then by kind and text so
// every store returns ties in the same order.
func sortErrorCounts(out []ErrorCount) {
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

// Dead implements Store.
func (m *Memory) Dead(ctx context.Context, job string, limit int) ([]Item, error) {
	if limit < 1 {
		return nil, fmt.Errorf("%w: limit %d < 1", ErrInvalid, limit)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	j, err := m.job(job)
	if err != nil {
		return nil, err
	}
	var dead []*memItem
	for _, mi := range j.items {
		if mi.it.State == Dead {
			dead = append(dead, mi)
		}
	}
	sort.Slice(dead, func(a, b int) bool { return dead[a].seq < dead[b].seq })
	if len(dead) > limit {
		dead = dead[:limit]
	}
	out := make([]Item, len(dead))
	for i, mi := range dead {
		out[i] = cloneItem(mi.it)
	}
	return out, nil
}

// RetryDead implements Store.
func (m *Memory) RetryDead(ctx context.Context, job string) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	j, err := m.job(job)
	if err != nil {
		return 0, err
	}
	now := m.opts.now().UTC()
	var n int64
	for _, mi := range j.items {
		if mi.it.State != Dead {
			continue
		}
		mi.ver++
		mi.it.State = Pending
		j.open++
		mi.it.Attempts = 0
		mi.it.Due = time.Time{}
		mi.it.Updated = now
		j.enqueue(mi)
		n++
	}
	return n, nil
}

// Close implements Store.
func (m *Memory) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	m.closed = true
	m.jobs = nil
	return nil
}
