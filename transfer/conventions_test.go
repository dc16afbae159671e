package transfer

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rebound-go/rebound"
	"github.com/rebound-go/rebound/reboundhttp"
	"github.com/rebound-go/rebound/reboundtest"
)

// StallTimeout follows the rule of every timeout: 0 is the default, a
// negative value means never, as reboundhttp.Config.StallTimeout.
func TestStallTimeoutNegativeMeansNever(t *testing.T) {
	if got := stallTimeout(0); got != reboundhttp.DefaultStallTimeout {
		t.Fatalf("stallTimeout(0) = %v", got)
	}
	if got := stallTimeout(-1); got != 0 {
		t.Fatalf("stallTimeout(-1) = %v, want off", got)
	}
	clock := reboundtest.NewClock(reboundtest.Epoch)
	cut := false
	sr := newStallReader(strings.NewReader("x"), clock, stallTimeout(-1), func() { cut = true })
	clock.Advance(24 * time.Hour)
	if b, err := io.ReadAll(sr); err != nil || string(b) != "x" || cut {
		t.Fatalf("read %q, %v, cut %v: an off stall timeout cut the body", b, err, cut)
	}
	sr.stop()
}

// transfer's stall error is reboundhttp's: one sentinel for the module.
func TestErrStalledIsReboundhttps(t *testing.T) {
	if !errors.Is(ErrStalled, reboundhttp.ErrStalled) {
		t.Fatal("two ErrStalled")
	}
}

// A negative ProgressInterval means no minimum between progress events:
// one for every read, where 0 (the default) holds them to one per 250 ms.
func TestProgressIntervalNegativeMeansNone(t *testing.T) {
	body := strings.Repeat("x", 1<<20) // four reads of 256 KiB at least
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", `"e"`)
		io.WriteString(w, body)
	}))
	defer srv.Close()
	count := func(interval time.Duration) int {
		n := 0
		_, err := Download(context.Background(), srv.URL, DownloadOptions{
			Path: filepath.Join(t.TempDir(), "f"), Store: newStore(t), Pipeline: fastPipeline,
			Clock: reboundtest.NewClock(reboundtest.Epoch), ProgressInterval: interval,
			OnEvent: func(ev Event) {
				if ev.Type == EventProgress {
					n++
				}
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if def, none := count(0), count(-1); none < 5 || def > 2 {
		t.Fatalf("%d progress events with the default interval, %d with none; want at most 2 and at least 5", def, none)
	}
}

// A negative ChunkSize has no "none" to mean: it is a *rebound.ConfigError.
func TestNegativeChunkSizeIsConfigError(t *testing.T) {
	f := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(f, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Upload(context.Background(), f, "http://127.0.0.1:1/files", UploadOptions{ChunkSize: -1, Store: newStore(t)})
	var ce *rebound.ConfigError
	if !errors.As(err, &ce) || !errors.Is(err, ErrInvalid) {
		t.Fatalf("err %v, want a *rebound.ConfigError matching ErrInvalid", err)
	}
}
