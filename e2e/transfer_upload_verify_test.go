package e2e

import (
	"bytes"
	"context"
	"os"
	"path"
	"path/filepath"
	"testing"

	"github.com/rebound-go/rebound"
	"github.com/rebound-go/rebound/transfer"
)

// A file changed past its first MiB with its size and modification time
// kept (cp -p, rsync -t) between two runs: the second run must not resume
// the upload of the old bytes (the fingerprint reads only the first MiB),
// but check what the server confirmed and start over. Against the real tusd.
func TestUploadResumeChecksSentBytes(t *testing.T) {
	const chunk = 256 << 10
	data := trData(3<<20, 13)
	src := filepath.Join(t.TempDir(), "src.bin")
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(src)
	if err != nil {
		t.Fatal(err)
	}
	ts := trStartTusd(t)
	store, err := transfer.NewFileStateStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	fast := &rebound.Pipeline{Retry: rebound.Retry{Backoff: rebound.NoDelay}}
	ctx, cancel := context.WithCancel(context.Background())
	_, err = transfer.Upload(ctx, src, ts.srv.URL+"/files/", transfer.UploadOptions{Store: store, ChunkSize: chunk, Pipeline: fast,
		OnEvent: func(ev transfer.Event) {
			if ev.Type == transfer.EventProgress && ev.Done >= 2<<20 {
				cancel()
			}
		}})
	cancel()
	if err == nil {
		t.Fatal("the first run was not interrupted")
	}

	// Change bytes the server already holds, past the first MiB; keep the
	// size and the modification time.
	changed := bytes.Clone(data)
	copy(changed[3<<19:], bytes.Repeat([]byte{0xAA}, 4096))
	if err := os.WriteFile(src, changed, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(src, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	var restarts []string
	res, err := transfer.Upload(context.Background(), src, ts.srv.URL+"/files/", transfer.UploadOptions{Store: store, ChunkSize: chunk, Pipeline: fast,
		OnEvent: func(ev transfer.Event) {
			if ev.Type == transfer.EventRestart {
				restarts = append(restarts, ev.Reason)
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(ts.dir, path.Base(res.URL)))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, changed) {
		t.Fatalf("tusd holds %d bytes that are not the file's (resumed: %v)", len(got), res.Resumed)
	}
	if res.Resumed || len(restarts) != 1 {
		t.Fatalf("resumed %v, restarts %q: want one restart, no resume", res.Resumed, restarts)
	}
}
