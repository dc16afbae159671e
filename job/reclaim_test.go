package job

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/rebound-go/rebound/checkpoint"
	"github.com/rebound-go/rebound/checkpoint/memory"
)

// sharedStore hides every optional interface of the store it wraps, as a
// store many processes share would lack checkpoint.RunLocker.
type sharedStore struct{ checkpoint.Store }

// TestRunReclaimFollowsTheStore: whether a run takes back the leases an
// earlier run left is the store's to say, not a flag's. A RunLocker (memory,
// SQLite) belongs to one process, so they are a crashed run's and come back
// at once; any other store is shared, so they may be a live worker's and are
// left to expire.
func TestRunReclaimFollowsTheStore(t *testing.T) {
	ctx := context.Background()

	mem := memory.New(checkpoint.Config{})
	addJob(t, mem, "a", "b")
	if got, err := mem.Lease(ctx, "j", "crashed", 1, time.Hour); err != nil || len(got) != 1 {
		t.Fatal(got, err)
	}
	sum, err := Run(ctx, Config{Job: "j", Store: mem}, func(context.Context, *Task) error { return nil })
	if err != nil || sum.Reclaimed != 1 || sum.Done != 2 {
		t.Fatalf("RunLocker store: %+v %v; want the crashed lease reclaimed and both done", sum, err)
	}

	inner := memory.New(checkpoint.Config{})
	addJob(t, inner, "a", "b")
	held, err := inner.Lease(ctx, "j", "live-worker", 1, time.Hour)
	if err != nil || len(held) != 1 {
		t.Fatal(held, err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	sum, err = Run(runCtx, Config{Job: "j", Store: sharedStore{inner}}, func(_ context.Context, tk *Task) error {
		cancel() // b is done; a stays with its live holder
		return nil
	})
	if !errors.Is(err, ErrInterrupted) || sum.Reclaimed != 0 {
		t.Fatalf("shared store: %+v %v; want nothing reclaimed", sum, err)
	}
	if it, err := inner.Item(ctx, "j", held[0].ID); err != nil || it.State != checkpoint.Leased || it.Lease != held[0].Lease {
		t.Fatalf("the live worker's lease was taken: %+v %v", it, err)
	}
}
