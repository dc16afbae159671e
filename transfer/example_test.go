package transfer_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"time"

	"github.com/rebound-go/rebound/transfer"
)

func ExampleDownload() {
	content := bytes.Repeat([]byte("rebound "), 1000)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", `"v1"`)
		http.ServeContent(w, r, "notes.txt", time.Unix(1700000000, 0), bytes.NewReader(content))
	}))
	defer srv.Close()
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	store, _ := transfer.NewFileStateStore(filepath.Join(dir, "state"))

	// No Path: the name comes from the URL, sanitised, inside Dir.
	res, err := transfer.Download(context.Background(), srv.URL+"/files/notes.txt", transfer.DownloadOptions{
		Dir:    dir,
		Store:  store,
		SHA256: fmt.Sprintf("%x", sha256.Sum256(content)), // checked once, at the end
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(filepath.Base(res.Path), res.Size, res.Resumed, res.Verified)
	// Output: notes.txt 8000 false sha256
}
