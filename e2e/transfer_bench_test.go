package e2e

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/rebound-go/rebound/transfer"
)

// BenchmarkUpload compares transfer.Upload to an embedded tusd (file store,
// default 8 MiB chunks) with one plain PUT of the same bytes to a loopback
// handler that writes them to a file, in the same run:
//
//	cd e2e && go test -run XXX -bench BenchmarkUpload -benchtime 5x .
func BenchmarkUpload(b *testing.B) {
	const size = 64 << 20
	block := trData(1<<20, 11)
	data := bytes.Repeat(block, size/len(block))
	src := filepath.Join(b.TempDir(), "src.bin")
	if err := os.WriteFile(src, data, 0o644); err != nil {
		b.Fatal(err)
	}
	b.Run("plain-PUT", func(b *testing.B) {
		dir := b.TempDir()
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			f, err := os.Create(filepath.Join(dir, "put.bin"))
			if err != nil {
				http.Error(w, err.Error(), 500)
				return
			}
			io.Copy(f, r.Body)
			f.Close()
			w.WriteHeader(http.StatusNoContent)
		}))
		defer srv.Close()
		b.SetBytes(size)
		b.ReportAllocs()
		for b.Loop() {
			f, _ := os.Open(src)
			req, _ := http.NewRequest(http.MethodPut, srv.URL, f)
			req.ContentLength = size
			resp, err := http.DefaultClient.Do(req)
			if err != nil || resp.StatusCode != http.StatusNoContent {
				b.Fatal(resp, err)
			}
			resp.Body.Close()
			f.Close()
		}
	})
	b.Run("transfer.Upload-tusd", func(b *testing.B) {
		ts := trStartTusdB(b)
		store, _ := transfer.NewFileStateStore(b.TempDir())
		b.SetBytes(size)
		b.ReportAllocs()
		for b.Loop() {
			res, err := transfer.Upload(context.Background(), src, ts.URL+"/files/", transfer.UploadOptions{Store: store})
			if err != nil || res.Size != size {
				b.Fatal(res, err)
			}
		}
	})
}
