// Package groupcommit is the group-commit queue the checkpoint stores share
// (checkpoint/sqlite.Store, checkpoint/postgres.Store): writers hand operations to
// one committer goroutine, which writes everything queued so far in one
// transaction.
//
// # Model
//
// The committer takes one operation from the queue, then everything else
// already queued (up to MaxBatch by the Weight measure), and hands the
// batch to Commit. Under load the queue fills while a transaction commits,
// so batches grow with the load, and no timer delays a lone write. Send
// returns once the operation is queued, not written: a write is durable
// once a later Flush returns nil. A Commit error is sticky: every later
// Send, Flush and Close returns it, and nothing more is committed.
//
// # Concurrency
//
// A *Committer is safe for concurrent use. Send and Flush block only while
// the queue is full (and Flush until its batch is committed); both give up
// when ctx is done. Close waits for the queued operations to be committed.
// There is no zero value: use New.
package groupcommit

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
)

// Config configures a Committer.
type Config[Op any] struct {
	// Commit writes one batch atomically and returns nil once it is
	// durable. It runs on the committer goroutine only, one batch at a
	// time, in queue order. It is also called with an empty batch when the
	// batch held only flushes. The error it returns becomes the sticky
	// error as is: wrap it with what the store's callers need to read.
	Commit func(batch []Op) error
	// Weight is how much op counts toward MaxBatch; nil counts 1 per op.
	// A flush counts 1, and so does an op weighing less.
	Weight func(op Op) int
	// MaxBatch bounds the total Weight of one batch; 0 means 4096. A batch
	// always holds at least one operation, whatever its weight.
	MaxBatch int
	// QueueSize is how many operations may wait for the committer before
	// Send blocks; 0 means 1024.
	QueueSize int
	// ErrClosed is what Send, Flush and a second Close return after Close.
	ErrClosed error
}

// entry is one hand-over: an operation, or a flush (flush != nil).
type entry[Op any] struct {
	op    Op
	flush chan error
}

// Committer queues operations and commits them in groups on its own
// goroutine. Create it with New; Close it to stop the goroutine.
type Committer[Op any] struct {
	cfg Config[Op]

	sendMu sync.RWMutex // held for reading while sending to ops; Close takes it to close ops
	closed bool
	ops    chan entry[Op]
	done   chan struct{} // closed when the committer exits

	errMu sync.Mutex
	err   error // sticky Commit failure
}

// New starts a committer. cfg.Commit must not be nil.
func New[Op any](cfg Config[Op]) *Committer[Op] {
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 4096
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = 1024
	}
	c := &Committer[Op]{
		cfg:  cfg,
		ops:  make(chan entry[Op], cfg.QueueSize),
		done: make(chan struct{}),
	}
	go c.run()
	return c
}

// Send queues op for the next group commit, waiting while the queue is
// full. It returns the sticky error if a commit failed, ErrClosed after
// Close, or ctx's error if ctx ends first (op is then not queued).
func (c *Committer[Op]) Send(ctx context.Context, op Op) error {
	return c.send(ctx, entry[Op]{op: op})
}

func (c *Committer[Op]) send(ctx context.Context, e entry[Op]) error {
	if err := c.Err(); err != nil {
		return err
	}
	c.sendMu.RLock()
	defer c.sendMu.RUnlock()
	if c.closed {
		return c.cfg.ErrClosed
	}
	select {
	case c.ops <- e:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Flush waits until every operation sent before it is committed, and
// returns the commit's error (nil: they are durable). If ctx ends first it
// returns ctx's error; the operations are still committed in time.
func (c *Committer[Op]) Flush(ctx context.Context) error {
	ch := make(chan error, 1)
	if err := c.send(ctx, entry[Op]{flush: ch}); err != nil {
		return err
	}
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Err returns the sticky error: the first error Commit returned, or nil.
func (c *Committer[Op]) Err() error {
	c.errMu.Lock()
	defer c.errMu.Unlock()
	return c.err
}

// Closed reports whether Close has been called.
func (c *Committer[Op]) Closed() bool {
	c.sendMu.RLock()
	defer c.sendMu.RUnlock()
	return c.closed
}

// Close stops accepting operations, waits until everything queued is
// committed and the goroutine has exited, and returns the sticky error. A
// second Close returns ErrClosed at once.
func (c *Committer[Op]) Close() error {
	c.sendMu.Lock()
	if c.closed {
		c.sendMu.Unlock()
		return c.cfg.ErrClosed
	}
	c.closed = true
	close(c.ops)
	c.sendMu.Unlock()
	<-c.done
	return c.Err()
}

// run is the committer goroutine: it takes one entry, then everything else
// already queued (up to MaxBatch), commits the operations among them in one
// batch, and answers the flushes among them once it has committed.
func (c *Committer[Op]) run() {
	defer close(c.done)
	var (
		batch []entry[Op]
		ops   []Op
	)
	for {
		e, ok := <-c.ops
		if !ok {
			return
		}
		batch = append(batch[:0], e)
		size := c.weight(e)
	drain:
		for size < c.cfg.MaxBatch {
			select {
			case e, ok := <-c.ops:
				if !ok {
					break drain // Close: write what we have, then the loop exits
				}
				batch = append(batch, e)
				size += c.weight(e)
			default:
				break drain
			}
		}
		err := c.Err()
		if err == nil {
			ops = ops[:0]
			for i := range batch {
				if batch[i].flush == nil {
					ops = append(ops, batch[i].op)
				}
			}
			if err = c.cfg.Commit(ops); err != nil {
				c.errMu.Lock()
				c.err = err
				c.errMu.Unlock()
			}
			clear(ops) // let the operations be collected
		}
		for i := range batch {
			if batch[i].flush != nil {
				batch[i].flush <- err
			}
			batch[i] = entry[Op]{} // let the operation be collected
		}
	}
}

func (c *Committer[Op]) weight(e entry[Op]) int {
	if e.flush != nil || c.cfg.Weight == nil {
		return 1
	}
	return max(c.cfg.Weight(e.op), 1) // every entry counts, so a batch is bounded
}

// ProgressOp is a progress record handed to a store's committer
// (Store.SaveProgress), already encoded.
type ProgressOp struct {
	Job, ID string // the item the progress belongs to
	Lease   int64  // the lease it was saved under; applied only if still current
	Data    []byte // EncodeProgress's output; nil for the zero value
}

// NewProgressOp encodes p for the item's progress column.
func NewProgressOp[P interface{ IsZero() bool }](job, id string, lease int64, p P) (*ProgressOp, error) {
	data, err := EncodeProgress(p)
	if err != nil {
		return nil, err
	}
	return &ProgressOp{Job: job, ID: id, Lease: lease, Data: data}, nil
}

// EncodeProgress encodes a progress record (checkpoint.Progress) for a
// store's progress column: nil for the zero value, else JSON.
func EncodeProgress[P interface{ IsZero() bool }](p P) ([]byte, error) {
	if p.IsZero() {
		return nil, nil
	}
	b, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: encode progress: %w", err)
	}
	return b, nil
}
