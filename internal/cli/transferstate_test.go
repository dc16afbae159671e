package cli

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rebound-go/rebound"
	"github.com/rebound-go/rebound/transfer"
)

// TestGetResumesALibraryDownload: the CLI keeps transfer state as the Go
// library does (a FileStateStore), so `rebound get` resumes a download that
// transfer.Download began in the same state directory, from its offset,
// instead of starting over (the CLI once kept its own transfers.db there).
func TestGetResumesALibraryDownload(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789"), 1000)
	var (
		mu     sync.Mutex
		ranges []string
		cut    = true
		lib    = true // the library's turn: after the cut, refuse
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		ranges = append(ranges, r.Header.Get("Range"))
		first, refuse := cut, lib && !cut
		cut = false
		mu.Unlock()
		if refuse {
			http.Error(w, "try later", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("ETag", `"v1"`)
		w.Header().Set("Accept-Ranges", "bytes")
		if first {
			// Half the body, then the connection drops.
			w.Header().Set("Content-Length", fmt.Sprint(len(data)))
			w.WriteHeader(http.StatusOK)
			w.Write(data[:len(data)/2])
			w.(http.Flusher).Flush()
			conn, _, _ := w.(http.Hijacker).Hijack()
			conn.Close()
			return
		}
		http.ServeContent(w, r, "f.bin", time.Time{}, bytes.NewReader(data))
	}))
	defer srv.Close()
	dir, stateDir := t.TempDir(), t.TempDir()
	out := filepath.Join(dir, "f.bin")

	store, err := transfer.NewFileStateStore(stateDir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = transfer.Download(context.Background(), srv.URL+"/f.bin", transfer.DownloadOptions{
		Path: out, Store: store, Pipeline: &rebound.Pipeline{Retry: rebound.Retry{MaxAttempts: 1}}})
	if err == nil {
		t.Fatal("the library's download did not fail on the cut")
	}

	mu.Lock()
	lib = false
	mu.Unlock()
	var stdout, stderr bytes.Buffer
	code := Main([]string{"get", srv.URL + "/f.bin", "-o", out, "--state-dir", stateDir}, nil, &stdout, &stderr)
	if code != ExitOK {
		t.Fatalf("get: exit %d: %s", code, stderr.String())
	}
	if got, err := os.ReadFile(out); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("file: %d bytes, %v", len(got), err)
	}
	mu.Lock()
	defer mu.Unlock()
	if last := ranges[len(ranges)-1]; !strings.HasPrefix(last, fmt.Sprintf("bytes=%d-", len(data)/2)) {
		t.Fatalf("requests' Range headers %q; want the CLI to resume at byte %d", ranges, len(data)/2)
	}
}
