package transfer

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rebound-go/rebound"
)

// A transfer's errors and events never quote its URL's query or userinfo
// (a refused connection's *url.Error does) and never pass on a reason
// phrase's terminal escapes.
func TestTransferErrorsRedacted(t *testing.T) {
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, buf, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		fmt.Fprint(buf, "HTTP/1.1 404 Not\x1b[2J\u202eFound\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
		buf.Flush()
	}))
	defer evil.Close()
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	dir := t.TempDir()
	file := filepath.Join(dir, "up.bin")
	if err := os.WriteFile(file, []byte("data"), 0o600); err != nil {
		t.Fatal(err)
	}
	one := &rebound.Pipeline{Retry: rebound.Retry{MaxAttempts: 1}}
	for _, base := range []string{evil.URL, closed.URL} {
		u := strings.Replace(base, "http://", "http://user:PASSWORD1@", 1) + "/f?token=SECRET123"
		var texts []string
		onEvent := func(ev Event) {
			texts = append(texts, ev.Reason)
			if ev.Err != nil {
				texts = append(texts, ev.Err.Error())
			}
		}
		_, err := Download(context.Background(), u, DownloadOptions{Dir: dir, Store: newStore(t), Pipeline: one, OnEvent: onEvent})
		if err == nil {
			t.Fatal("download: no error")
		}
		texts = append(texts, err.Error())
		_, err = Upload(context.Background(), file, u, UploadOptions{Store: newStore(t), Pipeline: one, OnEvent: onEvent})
		if err == nil {
			t.Fatal("upload: no error")
		}
		texts = append(texts, err.Error())
		for _, s := range texts {
			for _, bad := range []string{"SECRET123", "PASSWORD1", "\x1b", "\u202e"} {
				if strings.Contains(s, bad) {
					t.Errorf("%q reaches a message: %q", bad, s)
				}
			}
		}
	}
}
