// Package checkpoint is rebound's durable progress store: it remembers which
// items of a batch job (or which bytes of a transfer) are done, so that a
// program killed at any moment resumes where it stopped instead of starting
// over.
//
// # Model
//
// A job is a named set of items. A job is created by [Store.OpenJob] with a
// [JobMeta] that holds the fingerprint (a hash) of the manifest it was built
// from; opening it again with another fingerprint is refused with
// [ErrManifestChanged], so a changed manifest never mixes with old progress.
// [Store.Restart] drops a job's state on purpose.
//
// Creating a job also draws its [Job.ID], a random 128-bit identity that the
// store keeps with it: the same on every reopen, resume and worker sharing
// the job, new once the job is restarted, and different in every other store.
// Idempotency keys are derived from it (see job.IdempotencyKey), so two jobs
// of the same name (two state files, or one name before and after a restart)
// never send the same key.
//
// An item has a stable string ID, a small opaque payload (the manifest line,
// or only its offset: the runner decides), an [ItemState], an attempt count, the
// last error and its kind, timestamps, and a small [Progress] record (offset,
// ETag, upload URL, cursor) for work that can be resumed half-way.
//
// Workers take items with [Store.Lease]: up to n items that are pending,
// failed and due again, or held by a lease that has expired. Each lease
// carries a token ([Item.Lease]) that the item never had before (the store
// draws it from a sequence, one value per Lease call); results and
// progress are applied only while the token still matches, so a worker that
// lost its lease (it stalled past the TTL and another worker took the item)
// cannot overwrite the newer owner's state. [Store.Extend] is the heartbeat
// for long items. Expiry is what brings back the items of a worker that died;
// a single-process runner, which knows its predecessor is dead, calls
// [RunLocker.Reclaim] at start to get them back at once instead of after the
// TTL.
//
// Leasing counts an attempt: Lease increments [Item.Attempts], so work lost
// in a crash counts too and an item that kills its worker every time ends up
// dead instead of looping forever. A lease whose item was never sent gives
// its attempt back: [Store.Release] (pending again at once) or [Store.Defer]
// (failed until a given time), so attempts count what may have been sent.
//
// # Durability and group commit
//
// [Store.Complete] and [Store.SaveProgress] hand their writes to the store
// and return; the store batches the writes of all goroutines into one
// transaction (group commit), so checkpointing does not cap throughput. A
// write is durable once [Store.Flush] (called after it returns) has returned
// nil, or once [Store.Close] has returned nil. Writes that were handed over
// but not yet flushed may be lost in a crash; their items are then still
// leased (or pending) and are done again, which is why the work itself must
// be idempotent (rebound derives an idempotency key from the job's ID and
// the item ID).
// All other methods (OpenJob, Restart, AddItems, Lease, Extend, Reclaim,
// RetryDead) write synchronously: their effect is durable when they return.
// Readers (Item, Stats, Unfinished, TopErrors, Dead) see committed state;
// call Flush first to include your own handed-over writes.
//
// A failed group commit is sticky: the writes in it are lost, and every later
// Complete, SaveProgress, Flush and Close returns the error. Their items come
// back through lease expiry (or Reclaim) after the store is reopened.
//
// # Concurrency
//
// A Store is safe for concurrent use by many goroutines. Two leases never
// hold the same item at the same time (a lease that expired may be replaced;
// the old token then stops working).
//
// # Stores
//
// This package is the contract and its types; the stores live in packages of
// their own, so a program links only the store it uses (a program that moves
// files with package transfer links no database engine):
//
//   - checkpoint/memory keeps everything in memory (tests, benchmarks, jobs
//     that need not survive the process). It is a [RunLocker] and a
//     [Reporter].
//   - checkpoint/sqlite is the embedded default: one file, for one process
//     at a time. It is a [RunLocker] and a [Reporter].
//   - checkpoint/postgres is the store that many workers on many machines
//     share: a [Reporter], a [JobLocker] and a [WorkerLister].
//
// All three pass the same conformance suite (package checkpoint/storetest).
//
// # Schema versions
//
// The durable stores version their layout the same way: one integer, the
// number of the newest migration applied (SQLite keeps it in PRAGMA
// user_version, PostgreSQL in a one-row table), and an ordered list of
// migrations, each taking version n-1 to n. Opening a store of an older
// version applies the migrations it lacks, in one transaction, so an old file
// is brought up to date rather than refused; a store of a newer version than
// the build knows is refused with [ErrBadFile] and left as it was.
package checkpoint

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rebound-go/rebound"
)

// Errors returned by stores. They are wrapped with details (the job, the
// item ID, the file); test for them with errors.Is.
var (
	// ErrNoJob: the job does not exist (never opened, or restarted).
	ErrNoJob = errors.New("checkpoint: no such job")
	// ErrNoItem: the item does not exist in the job.
	ErrNoItem = errors.New("checkpoint: no such item")
	// ErrManifestChanged: OpenJob was given a JobMeta that differs from the
	// one the job was created with. Its text says how to go on without
	// doing finished items twice.
	ErrManifestChanged = errors.New("checkpoint: job was started with a different manifest")
	// ErrDuplicateID: AddItems was given an ID the job already has, or the
	// same ID twice.
	ErrDuplicateID = errors.New("checkpoint: duplicate item ID")
	// ErrLeaseLost: Extend was called with a lease token that no longer
	// holds the item.
	ErrLeaseLost = errors.New("checkpoint: lease lost")
	// ErrClosed: the store has been closed.
	ErrClosed = errors.New("checkpoint: store closed")
	// ErrBadFile: a store file cannot be used (not a database, damaged,
	// written by a newer version, or unsafe permissions). The file is left
	// as it was.
	ErrBadFile = errors.New("checkpoint: unusable store file")
	// ErrInvalid: an argument is out of range (empty ID, oversized payload,
	// unknown state, n < 1, ...).
	ErrInvalid = errors.New("checkpoint: invalid argument")
	// ErrLocked: another run holds the store's run lock (RunLocker), or
	// another process holds a lock on the store file.
	ErrLocked = errors.New("checkpoint: store is in use by another run")
	// ErrReadOnly: the store cannot be written (a read-only file system,
	// no write permission on the file or its folder, an immutable file),
	// or was opened with Config.ReadOnly. The store itself is fine: its
	// progress is intact, and it can be opened with Config.ReadOnly.
	ErrReadOnly = errors.New("checkpoint: store cannot be written")
)

// Limits that keep every item small, so that memory is bounded by the number
// of items in flight, not by the job's size.
const (
	// MaxIDLen is the longest item ID, in bytes.
	MaxIDLen = 1024
	// MaxPayloadLen is the largest item payload, in bytes. Keep a pointer
	// (a manifest offset) in the payload if lines may be larger.
	MaxPayloadLen = 64 << 10
	// MaxErrLen is how much of an error text is kept, in bytes; longer
	// texts are cut.
	MaxErrLen = 4 << 10
	// MaxProgressExtraLen is the largest Progress.Extra, in bytes.
	MaxProgressExtraLen = 16 << 10
)

// ItemState is where an item is in its life. The zero value is not a valid
// state. (The name keeps it apart from rebound.State, a breaker's state, and
// transfer.ResumeState.)
type ItemState uint8

// Item states. The numbers are stored in files; never renumber them.
const (
	// Pending: not yet tried, or given back by Reclaim, Release or RetryDead.
	Pending ItemState = 1
	// Leased: a worker holds it until its lease expires.
	Leased ItemState = 2
	// Done: finished successfully. Final.
	Done ItemState = 3
	// Failed: the last attempt failed and the item will be retried once
	// NextAt has passed.
	Failed ItemState = 4
	// Dead: failed for good (permanent error or out of attempts); only
	// RetryDead brings it back.
	Dead ItemState = 5
)

// String returns the lower-case name of the state.
func (s ItemState) String() string {
	switch s {
	case Pending:
		return "pending"
	case Leased:
		return "leased"
	case Done:
		return "done"
	case Failed:
		return "failed"
	case Dead:
		return "dead"
	}
	return fmt.Sprintf("ItemState(%d)", uint8(s))
}

// JobMeta describes the input a job was built from. OpenJob refuses to
// resume a job whose stored JobMeta differs from the one given.
type JobMeta struct {
	// Fingerprint identifies the manifest, e.g. a hex SHA-256 of it.
	Fingerprint string
	// Total is the number of items the manifest holds; 0 if unknown.
	// AddItems refuses to add more than Total items when it is set.
	Total int64
}

// Job is a job as stored.
type Job struct {
	// Name identifies the job in the store; every item belongs to one.
	Name string
	// ID is this job instance's identity: 32 hex digits from crypto/rand,
	// drawn when OpenJob creates the job (or, for a job stored by an older
	// version, when the store is first opened by this one). It stays the
	// same across reopens, crashes and the workers that share the job, and
	// is new after Restart; no two jobs, in one store or in two, share it.
	ID string
	// Meta is the JobMeta the job was first opened with; OpenJob compares
	// later opens against it.
	Meta JobMeta
	// Items is how many items have been added so far. AddItems is atomic
	// per call, so a runner that was killed while loading a manifest skips
	// the first Items entries of the same manifest and adds the rest.
	Items int64
	// Created is when the job was first opened.
	Created time.Time
	// Resumed reports that OpenJob found the job already stored.
	Resumed bool
}

// Progress is the partial-work record of an item: enough to resume a
// transfer or a paginated sync where it stopped. The store does not
// interpret it. Its zero value means "no progress".
type Progress struct {
	// Offset is the number of bytes (or records) already done.
	Offset int64 `json:"offset,omitempty"`
	// Size is the total size, if known.
	Size int64 `json:"size,omitempty"`
	// ETag identifies the remote version the offset refers to.
	ETag string `json:"etag,omitempty"`
	// UploadURL is a resumable upload's location (tus).
	UploadURL string `json:"upload_url,omitempty"`
	// UploadID is a multipart upload's ID.
	UploadID string `json:"upload_id,omitempty"`
	// Cursor is an opaque page cursor.
	Cursor string `json:"cursor,omitempty"`
	// Extra is anything else, at most MaxProgressExtraLen bytes.
	Extra []byte `json:"extra,omitempty"`
}

// IsZero reports whether p records no progress.
func (p Progress) IsZero() bool {
	return p.Offset == 0 && p.Size == 0 && p.ETag == "" && p.UploadURL == "" &&
		p.UploadID == "" && p.Cursor == "" && len(p.Extra) == 0
}

// Item is one unit of work. AddItems reads only ID and Payload; the other
// fields are filled in by the store.
type Item struct {
	// Job is the job's name.
	Job string
	// ID is stable across runs and unique in the job; 1..MaxIDLen bytes.
	ID string
	// Payload is opaque to the store; at most MaxPayloadLen bytes.
	Payload []byte

	// State is where the item is in its life cycle: Pending, Leased, Done,
	// Failed or Dead.
	State ItemState
	// Attempts counts the leases handed out for the item, less those given
	// back unsent (Release, Defer), or the value the last Result set.
	Attempts int
	// Err is the last failure's text, e.g. "connection refused", at most
	// MaxErrLen bytes. Kept after success, to show what it took.
	Err string
	// ErrKind is the last failure's class, the rebound.Kind name such as
	// "transient" or "permanent". Kept after success like Err.
	ErrKind string
	// Progress is the last saved partial-work record.
	Progress Progress

	// Worker names the holder of the current (or last) lease, as given to
	// Lease.
	Worker string
	// Lease is the current (or last) lease's token, to pass to Complete,
	// Extend and SaveProgress; a newer lease makes older tokens stale.
	Lease int64
	// Due is when the item may be leased again: for Failed items the next
	// attempt time, for Leased items the lease expiry. Zero otherwise.
	Due time.Time

	// Created is when AddItems stored the item.
	Created time.Time
	// Updated is when the item was last written (leased, extended,
	// released, completed, progress saved). For a Done item it is when its
	// result was stored, which Stats uses for throughput.
	Updated time.Time
}

// Result is the outcome of one lease of an item, handed to Complete.
type Result struct {
	// Job is the name of the item's job.
	Job string
	// ID is the item's ID within Job.
	ID string
	// Lease is the token of the lease the work was done under; the result
	// is dropped if the item has since been leased again (see package doc).
	Lease int64
	// State is Done, Failed (retry at NextAt) or Dead.
	State ItemState
	// Attempts, if above 0, replaces the item's attempt count (e.g. the
	// leased Item.Attempts plus retries the runner made within the lease).
	Attempts int
	// Err is the failure's text; longer than MaxErrLen, it is cut. If Err
	// and ErrKind are both empty (a success, usually) the item keeps its
	// last error.
	Err string
	// ErrKind is the failure's class, the rebound.Kind name such as
	// "transient"; see Err for when it is kept.
	ErrKind string
	// NextAt is when a Failed item becomes leasable again; zero means now.
	NextAt time.Time
	// Progress, if not nil, is saved along with the result.
	Progress *Progress
}

// Stats counts a job's items.
type Stats struct {
	// Job is the stored job the counts belong to.
	Job Job
	// Items per state.
	Pending, Leased, Done, Failed, Dead int64
	// Attempts is the sum of all items' attempts.
	Attempts int64
	// FirstDone and LastDone are the earliest and latest update times of
	// Done items (zero if none): Done / (LastDone - FirstDone) is the
	// throughput.
	FirstDone, LastDone time.Time
}

// Items returns the number of items in all states.
func (s Stats) Items() int64 { return s.Pending + s.Leased + s.Done + s.Failed + s.Dead }

// ErrorCount is one line of TopErrors: how many Failed and Dead items have
// this last error.
type ErrorCount struct {
	// Kind is the items' ErrKind, e.g. "transient".
	Kind string
	// Err is the items' last error text.
	Err string
	// Count is how many Failed and Dead items have this Kind and Err.
	Count int64
}

// Store is the lease queue every store implements: durable job progress.
// See the package doc for the model, the durability of each method and the
// concurrency guarantees. Every implementation must pass checkpoint/storetest.
//
// A store may implement more, each in a small interface of its own, as tusd
// composes its stores: [Reporter] (what went wrong, and dead items back to
// work), [RunLocker] (one process owns the store: run lock and Reclaim),
// [JobLocker] and [WorkerLister] (stores many processes share). Callers ask
// for them with a type assertion.
type Store interface {
	// OpenJob creates the job if it does not exist, or returns the stored
	// one (Resumed set) if its JobMeta equals meta; otherwise it returns an
	// error wrapping ErrManifestChanged that names the job.
	OpenJob(ctx context.Context, name string, meta JobMeta) (Job, error)
	// Job returns the stored job (Resumed set), or an error wrapping
	// ErrNoJob. Unlike Stats it does not count the job's items.
	Job(ctx context.Context, name string) (Job, error)
	// Restart deletes the job and all its items. Restarting a job that does
	// not exist is not an error. Writes of the job that were handed over
	// earlier are flushed first; late results for its old leases are
	// dropped. Do not run it while workers of the job are running.
	Restart(ctx context.Context, name string) error

	// AddItems adds items to the job as Pending, all or none. An ID that
	// the job already has, or that appears twice, gives an error wrapping
	// ErrDuplicateID that names it.
	AddItems(ctx context.Context, job string, items []Item) error

	// Lease hands out up to n items to worker until now+ttl: first items
	// whose lease expired, then Failed items that are due (earliest first),
	// then Pending items (in the order they were added); within each of
	// these three groups the items it returns are in the order they were
	// added. It increments each item's Attempts and sets its lease token to
	// a new value (the items of one call share it). Fewer than n (maybe
	// none) means nothing else is leasable now.
	Lease(ctx context.Context, job, worker string, n int, ttl time.Duration) ([]Item, error)
	// Extend moves the expiry of the lease on item id to now+ttl. It returns
	// an error wrapping ErrLeaseLost if lease no longer holds the item.
	Extend(ctx context.Context, job, id string, lease int64, ttl time.Duration) error
	// Release gives back an item that was leased but never worked on (a
	// runner that stops with items leased ahead): it is Pending again at
	// once, and the attempt its lease counted is taken back. It returns an
	// error wrapping ErrLeaseLost if lease no longer holds the item.
	// Durable when it returns.
	Release(ctx context.Context, job, id string, lease int64) error
	// Defer puts off an item that was leased but not sent (a circuit
	// breaker refused it, or its host asked callers to wait): it is Failed
	// and leasable again at next (zero: now), and the attempt its lease
	// counted is taken back, in one write. err and errKind, unless both
	// are empty, become its last error. It returns an error wrapping
	// ErrLeaseLost if lease no longer holds the item. Durable when it
	// returns.
	Defer(ctx context.Context, job, id string, lease int64, next time.Time, err, errKind string) error

	// Complete hands results over for the next group commit and returns;
	// it blocks only while the store's queue is full. Results whose lease
	// token no longer holds the item are dropped.
	Complete(ctx context.Context, results []Result) error
	// SaveProgress hands a progress record over for the next group commit.
	// It applies only while lease holds the item; lease 0 applies
	// unconditionally: that is the progress slot of a transfer, which keeps
	// one item per job as a key/value record and never leases it.
	SaveProgress(ctx context.Context, job, id string, lease int64, p Progress) error
	// Flush returns once every write handed over before it was called is
	// durable, or the error that prevented it.
	Flush(ctx context.Context) error

	// Item returns one item.
	Item(ctx context.Context, job, id string) (Item, error)
	// Stats counts the job's items per state. It reads every item of the
	// job: use Unfinished to learn whether work is left.
	Stats(ctx context.Context, job string) (Stats, error)
	// Unfinished reports whether the job has an item that is not final:
	// Pending, Leased (even under an expired lease) or Failed (even if not
	// due yet). It answers without counting the job's items (an index
	// probe that stops at the first such item), so a runner waiting for
	// deferred retries can ask it often.
	Unfinished(ctx context.Context, job string) (bool, error)

	// Close flushes, then releases the store. It returns the flush error,
	// if any. Later calls return ErrClosed.
	Close() error
}

// Reporter is implemented by stores that can say what went wrong in a job
// and put its dead items back to work (all of rebound's stores do); a status
// display and `rebound run` use it.
type Reporter interface {
	// TopErrors returns the n most common (kind, error) pairs among the
	// job's Failed and Dead items, most common first.
	TopErrors(ctx context.Context, job string, n int) ([]ErrorCount, error)
	// Dead returns up to limit Dead items, in the order they were added.
	Dead(ctx context.Context, job string, limit int) ([]Item, error)
	// RetryDead makes every Dead item of the job Pending with zero attempts
	// and returns how many there were.
	RetryDead(ctx context.Context, job string) (int64, error)
}

// RunLocker is implemented by stores that one process owns at a time
// (SQLite, memory). Such a store knows that leases left by an earlier run
// belong to a run that is dead once it holds the run lock, so it can take
// them back at once (Reclaim) instead of after their TTL; job.Run does so
// for every store that implements RunLocker, and never for others (a shared
// store's other workers are alive).
type RunLocker interface {
	// TryLockRun takes the run lock for job without waiting and returns the
	// function that releases it. If another holder has it, the error wraps
	// ErrLocked and says who holds it. A store may lock more than the job
	// (SQLite locks its whole file); the same store value may take it again
	// while it holds it, and each take needs its own release.
	TryLockRun(job string) (unlock func(), err error)
	// Reclaim makes every Leased item of the job Pending again, at once,
	// and returns how many there were. Call it only while holding the run
	// lock, at the start of a run: the leases it takes back must belong to
	// a run that is dead.
	Reclaim(ctx context.Context, job string) (int, error)
}

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

// Config configures a store. The zero value is the default for each field.
type Config struct {
	// Clock is the store's time source; nil means the real clock. Tests pass
	// a fake clock (reboundtest.Clock) so lease expiry and retry times need
	// no sleeping. PostgreSQL uses the server's clock unless Clock is set.
	Clock rebound.Clock
	// QueueSize is how many Complete/SaveProgress calls may wait for the
	// group commit before callers block; 0 means 1024. (SQLite and
	// PostgreSQL.) Negative is a *rebound.ConfigError.
	QueueSize int
	// MaxBatch is the most results one group commit writes; 0 means 4096.
	// (SQLite and PostgreSQL.) Negative is a *rebound.ConfigError.
	MaxBatch int
	// BusyTimeout is how long SQLite waits for a lock held by another
	// connection; 0 means 5 s, negative means not at all (a lock held
	// elsewhere fails at once). (SQLite only.)
	BusyTimeout time.Duration
	// ReadOnly opens an existing store file without writing to it (for a
	// status display, or a file on a read-only file system): no file is
	// created, no schema upgraded, and every write fails with ErrReadOnly.
	// (SQLite only.)
	ReadOnly bool
	// SkipQuickCheck skips PRAGMA quick_check when opening a file. The
	// check reads the whole file (measured: 0.2 s for a 39 MB file of 200k
	// items, on a busy 2-core machine); skip it only for very large files
	// you trust. (SQLite only.)
	SkipQuickCheck bool
}
