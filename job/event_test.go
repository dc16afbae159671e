package job

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/rebound-go/rebound/checkpoint"
	"github.com/rebound-go/rebound/checkpoint/memory"
)

// A retry event carries the handler's error as an error, as transfer.Event
// does: the hook can test it with errors.Is, and its text is redacted. The
// dead event carries the stored reason.
func TestEventErrIsTheCause(t *testing.T) {
	st := memory.New(checkpoint.Config{})
	addJob(t, st, "a")
	errBusy := errors.New(`busy at https://u:PASSWORD1@api.example/x`)
	var mu sync.Mutex
	var events []Event
	cfg := Config{Job: "j", Store: st, Retry: fastRetry(), MaxAttempts: 2, OnEvent: func(e Event) {
		mu.Lock()
		defer mu.Unlock()
		events = append(events, e)
	}}
	if _, err := Run(context.Background(), cfg, func(context.Context, *Task) error { return errBusy }); err != nil {
		t.Fatal(err)
	}
	var retry, dead *Event
	for i, e := range events {
		switch e.Type {
		case EventRetry:
			retry = &events[i]
		case EventDead:
			dead = &events[i]
		}
	}
	if retry == nil || dead == nil {
		t.Fatalf("events %+v: want a retry and a dead one", events)
	}
	if !errors.Is(retry.Err, errBusy) {
		t.Errorf("retry Err %v does not wrap the handler's error", retry.Err)
	}
	for _, e := range []*Event{retry, dead} {
		if e.Err == nil || e.Err.Error() == "" || strings.Contains(e.Err.Error(), "PASSWORD1") {
			t.Errorf("%s event Err %v: want the redacted reason", e.Type, e.Err)
		}
	}
}
