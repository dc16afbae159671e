package checkpoint_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/rebound-go/rebound/checkpoint"
	"github.com/rebound-go/rebound/checkpoint/memory"
	"github.com/rebound-go/rebound/checkpoint/sqlite"
)

// A transfer keeps its resumable state as the progress of a one-item job.
func Example_transfer() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	ctx := context.Background()
	path := filepath.Join(dir, "state.db")

	s, err := sqlite.Open(path, checkpoint.Config{})
	if err != nil {
		fmt.Println(err)
		return
	}
	job := "upload:/data/big.iso"
	j, _ := s.OpenJob(ctx, job, checkpoint.JobMeta{Fingerprint: "size=104857600,mtime=1700000000", Total: 1})
	if j.Items == 0 {
		s.AddItems(ctx, job, []checkpoint.Item{{ID: "file"}})
	}
	for off := int64(1); off <= 3; off++ { // after each chunk
		s.SaveProgress(ctx, job, "file", 0, checkpoint.Progress{Offset: off << 20, UploadURL: "https://tus.example/files/7f3a"})
	}
	s.Close() // flushes

	// The next run resumes from the saved offset.
	s, _ = sqlite.Open(path, checkpoint.Config{})
	defer s.Close()
	it, _ := s.Item(ctx, job, "file")
	fmt.Println(it.Progress.Offset, it.Progress.UploadURL)
	// Output: 3145728 https://tus.example/files/7f3a
}

// A runner's loop: reclaim what a killed predecessor held, lease, work,
// complete, flush at the end.
func Example_runner() {
	ctx := context.Background()
	s := memory.New(checkpoint.Config{})
	defer s.Close()
	s.OpenJob(ctx, "sync", checkpoint.JobMeta{Fingerprint: "sha256:1234", Total: 3})
	s.AddItems(ctx, "sync", []checkpoint.Item{{ID: "a"}, {ID: "b"}, {ID: "c"}})
	s.Reclaim(ctx, "sync") // single-process store: the previous run is dead

	for {
		items, err := s.Lease(ctx, "sync", "worker-1", 2, time.Minute)
		if err != nil || len(items) == 0 {
			break
		}
		for _, it := range items {
			r := checkpoint.Result{Job: it.Job, ID: it.ID, Lease: it.Lease, State: checkpoint.Done}
			if it.ID == "b" {
				r.State, r.ErrKind, r.Err = checkpoint.Dead, "client", "HTTP 404"
			}
			s.Complete(ctx, []checkpoint.Result{r})
		}
	}
	s.Flush(ctx)
	st, _ := s.Stats(ctx, "sync")
	top, _ := s.TopErrors(ctx, "sync", 5)
	fmt.Printf("done %d, dead %d, top error %s: %s (%d)\n", st.Done, st.Dead, top[0].Kind, top[0].Err, top[0].Count)
	// Output: done 2, dead 1, top error client: HTTP 404 (1)
}
