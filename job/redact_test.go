package job

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/rebound-go/rebound/checkpoint"
	"github.com/rebound-go/rebound/checkpoint/memory"
)

// Whatever a handler returns, the item's stored error, its events and its
// log lines carry no URL query or userinfo and no terminal escapes: the
// runner is the one way a handler's text reaches them.
func TestRunGuardsHandlerText(t *testing.T) {
	st := memory.New(checkpoint.Config{})
	ctx := context.Background()
	addJob(t, st, "a")
	h := func(ctx context.Context, task *Task) error {
		return errors.New(`Post "https://user:PASSWORD1@api.example/x?token=SECRET123": server says 500 Oops` + "\x1b[2J\u202e")
	}
	var mu sync.Mutex
	var texts []string
	var logs bytes.Buffer
	cfg := Config{Job: "j", Store: st, Retry: fastRetry(), MaxAttempts: 2,
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		OnEvent: func(e Event) {
			mu.Lock()
			defer mu.Unlock()
			if e.Err != nil {
				texts = append(texts, e.Err.Error())
			}
		}}
	if _, err := Run(ctx, cfg, h); err != nil {
		t.Fatal(err)
	}
	it, err := st.Item(ctx, "j", "a")
	if err != nil {
		t.Fatal(err)
	}
	texts = append(texts, it.Err, logs.String())
	for _, s := range texts {
		for _, bad := range []string{"SECRET123", "PASSWORD1", "\x1b", "\u202e"} {
			if strings.Contains(s, bad) {
				t.Errorf("%q reaches the output: %q", bad, s)
			}
		}
	}
	if !strings.Contains(it.Err, `https://api.example/x": server says 500 Oops\x1b[2J\u202e`) {
		t.Errorf("stored error lost its text: %q", it.Err)
	}
}
