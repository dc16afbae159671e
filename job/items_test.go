package job

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"slices"
	"sync"
	"testing"

	"github.com/rebound-go/rebound/checkpoint"
	"github.com/rebound-go/rebound/checkpoint/memory"
)

// numbered yields n items "item-0".."item-(n-1)" with a payload each.
func numbered(n int) iter.Seq2[string, []byte] {
	return func(yield func(string, []byte) bool) {
		buf := make([]byte, 0, 32) // reused: LoadItems must copy
		for i := range n {
			buf = fmt.Appendf(buf[:0], `{"n":%d}`, i)
			if !yield(fmt.Sprintf("item-%d", i), buf) {
				return
			}
		}
	}
}

// stopAfterAdds fails AddItems after its first n calls, as a process killed
// half-way through a load would stop.
type stopAfterAdds struct {
	checkpoint.Store
	n int
}

var errKilled = errors.New("killed")

func (s *stopAfterAdds) AddItems(ctx context.Context, job string, items []checkpoint.Item) error {
	if s.n == 0 {
		return errKilled
	}
	s.n--
	return s.Store.AddItems(ctx, job, items)
}

// Items from Go load with LoadManifest's guarantees: a load killed half-way
// continues where it stopped, a second load finds the job loaded (a resume
// skips its items), each item's payload is its own (not the iterator's
// reused buffer), and the runner does each item once.
func TestLoadItemsResumes(t *testing.T) {
	ctx := context.Background()
	st := memory.New(checkpoint.Config{})
	const n = 2*loadBatch + 500
	if _, err := LoadItems(ctx, &stopAfterAdds{Store: st, n: 1}, "j", numbered(n)); !errors.Is(err, errKilled) {
		t.Fatalf("first load: %v, want it killed after one batch", err)
	}
	jb, err := LoadItems(ctx, st, "j", numbered(n))
	if err != nil || jb.Items != n || !jb.Resumed {
		t.Fatalf("second load: %+v, %v; want %d items, resumed", jb, err, n)
	}
	var mu sync.Mutex
	seen := map[string]string{}
	sum, err := Run(ctx, Config{Job: "j", Store: st, Retry: fastRetry()}, func(_ context.Context, task *Task) error {
		mu.Lock()
		defer mu.Unlock()
		if _, dup := seen[task.ID]; dup {
			t.Errorf("item %s done twice", task.ID)
		}
		seen[task.ID] = string(task.Payload)
		return nil
	})
	if err != nil || sum.Done != n {
		t.Fatalf("run: %+v, %v; want %d done", sum, err, n)
	}
	if got := seen["item-1234"]; got != `{"n":1234}` {
		t.Errorf("item-1234's payload %q", got)
	}
	jb, err = LoadItems(ctx, st, "j", numbered(n))
	if err != nil || jb.Items != n || !jb.Resumed {
		t.Fatalf("load after the run: %+v, %v", jb, err)
	}
	if s, _ := st.Stats(ctx, "j"); s.Done != n || s.Items() != n {
		t.Errorf("stats after reloading: %+v, want %d done of %d", s, n, n)
	}
}

// Bad items are refused before anything is stored; other items than the
// job was started with are refused as a changed manifest; an iterator that
// yields other items on its second pass is caught.
func TestLoadItemsRefuses(t *testing.T) {
	ctx := context.Background()
	pairs := func(kv ...string) iter.Seq2[string, []byte] {
		return func(yield func(string, []byte) bool) {
			for i := 0; i+1 < len(kv); i += 2 {
				if !yield(kv[i], []byte(kv[i+1])) {
					return
				}
			}
		}
	}
	for name, items := range map[string]iter.Seq2[string, []byte]{
		"duplicate":    pairs("a", "1", "b", "2", "a", "3"),
		"empty id":     pairs("a", "1", "", "2"),
		"long id":      pairs(string(make([]byte, MaxIDLen+1)), "x"),
		"long payload": pairs("a", string(make([]byte, checkpoint.MaxPayloadLen+1))),
		"no items":     pairs(),
	} {
		st := memory.New(checkpoint.Config{})
		if _, err := LoadItems(ctx, st, "j", items); !errors.Is(err, checkpoint.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
		if _, err := st.Stats(ctx, "j"); !errors.Is(err, checkpoint.ErrNoJob) {
			t.Errorf("%s: a job was stored: %v", name, err)
		}
	}

	st := memory.New(checkpoint.Config{})
	if _, err := LoadItems(ctx, st, "j", pairs("a", "1", "b", "2")); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadItems(ctx, st, "j", pairs("a", "1", "b", "changed")); !errors.Is(err, checkpoint.ErrManifestChanged) {
		t.Errorf("other items: %v, want ErrManifestChanged", err)
	}

	passes := 0
	fickle := func(yield func(string, []byte) bool) {
		passes++
		for _, id := range []string{"a", "b", fmt.Sprint("c", passes)} {
			if !yield(id, nil) {
				return
			}
		}
	}
	_, err := LoadItems(ctx, memory.New(checkpoint.Config{}), "j", fickle)
	if !errors.Is(err, checkpoint.ErrInvalid) || passes != 2 {
		t.Errorf("items that change between passes: %v after %d passes, want ErrInvalid after 2", err, passes)
	}
}

// ExampleLoadItems adds a job's items from Go, here a slice of user IDs,
// and runs it. Loading again (a restarted program) adds nothing: the job
// resumes.
func ExampleLoadItems() {
	ctx := context.Background()
	st := memory.New(checkpoint.Config{})
	users := []string{"ada", "grace", "linus"}
	items := func(yield func(id string, payload []byte) bool) {
		for _, u := range users {
			if !yield("user-"+u, []byte(`{"name":"`+u+`"}`)) {
				return
			}
		}
	}
	jb, err := LoadItems(ctx, st, "welcome-mails", items)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("loaded", jb.Items, "items")
	var mu sync.Mutex
	var sent []string
	sum, err := Run(ctx, Config{Job: "welcome-mails", Store: st}, func(ctx context.Context, t *Task) error {
		mu.Lock()
		defer mu.Unlock()
		sent = append(sent, t.ID) // send t.Payload with Idempotency-Key t.Key
		return nil
	})
	slices.Sort(sent)
	fmt.Println(sum.Done, "done:", sent, err)
	jb, _ = LoadItems(ctx, st, "welcome-mails", items)
	fmt.Println("loaded again: resumed", jb.Resumed, "with", jb.Items, "items")
	// Output:
	// loaded 3 items
	// 3 done: [user-ada user-grace user-linus] <nil>
	// loaded again: resumed true with 3 items
}
