package transfer

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// A write that fails (here: the file size limit, as a full disk would)
// names the .part once: the message repeated the path ("write F: write F:
// file too large").
func TestDownloadWriteErrorNamesPathOnce(t *testing.T) {
	data := testData(1<<20, 33)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", `"w"`)
		w.Write(data)
	}))
	defer srv.Close()
	out := filepath.Join(t.TempDir(), "f.bin")
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
		t.Skip(err)
	}
	// Go ignores SIGXFSZ, so a write past the limit fails with EFBIG.
	lim := old
	lim.Cur = 256 << 10
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &lim); err != nil {
		t.Skip(err)
	}
	_, err := Download(context.Background(), srv.URL, DownloadOptions{Path: out, Store: newStore(t), Pipeline: fastPipeline})
	syscall.Setrlimit(syscall.RLIMIT_FSIZE, &old)
	if err == nil {
		t.Fatal("download past the file size limit succeeded")
	}
	if n := strings.Count(err.Error(), out+".part"); n != 1 {
		t.Fatalf("error names the .part %d times: %v", n, err)
	}
}
