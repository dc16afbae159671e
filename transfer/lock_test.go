//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package transfer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// Two downloads of one target at once: the second is refused with
// ErrLocked naming the holder before it sends or touches anything, and the
// first completes a correct file (a second writer once truncated the .part
// under it, leaving a hole of zeros in a file saved with success).
func TestDownloadOneWriterPerTarget(t *testing.T) {
	data := testData(300_000, 4)
	for _, mode := range []string{"path", "server-named"} {
		t.Run(mode, func(t *testing.T) {
			var requests atomic.Int32
			release := make(chan struct{})
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				n := requests.Add(1)
				w.Header().Set("ETag", `"v1"`)
				w.Header().Set("Content-Disposition", `attachment; filename="f.bin"`)
				w.Header().Set("Content-Length", fmt.Sprint(len(data)))
				if n > 1 {
					w.Write(data)
					return
				}
				w.Write(data[:100_000])
				w.(http.Flusher).Flush()
				<-release
				w.Write(data[100_000:])
			}))
			defer srv.Close()
			dir := t.TempDir()
			opts := DownloadOptions{Dir: dir, Store: newStore(t), Pipeline: fastPipeline}
			if mode == "path" {
				opts.Path, opts.Dir = filepath.Join(dir, "f.bin"), ""
			}
			second := opts
			writing := make(chan struct{})
			var once atomic.Bool
			opts.OnEvent = func(ev Event) {
				if ev.Type == EventProgress && once.CompareAndSwap(false, true) {
					close(writing) // the first holds the .part: it has written to it
				}
			}
			first := make(chan error, 1)
			go func() { _, err := Download(context.Background(), srv.URL+"/x", opts); first <- err }()
			<-writing
			second.StartOver = true // even a start-over must not touch the holder's file
			_, err := Download(context.Background(), srv.URL+"/x", second)
			close(release)
			if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), fmt.Sprintf("pid %d ", os.Getpid())) {
				t.Errorf("second download: err = %v, want ErrLocked naming pid %d", err, os.Getpid())
			}
			if mode == "path" && requests.Load() != 1 {
				t.Errorf("the refused download sent a request (%d in all)", requests.Load())
			}
			if err := <-first; err != nil {
				t.Fatalf("first download: %v", err)
			}
			checkFile(t, filepath.Join(dir, "f.bin"), data)
		})
	}
}

// A .part replaced by a link while the first response is pending is
// refused when opened, not followed: the check is on the file opened, not
// on the name beforehand.
func TestDownloadRefusesPartLinkedDuringResponse(t *testing.T) {
	for _, kind := range []string{"symlink", "hardlink"} {
		t.Run(kind, func(t *testing.T) {
			dir := t.TempDir()
			victim := filepath.Join(dir, "victim")
			os.WriteFile(victim, []byte("keep me"), 0o644)
			part := filepath.Join(dir, "f.part")
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				link := os.Symlink
				if kind == "hardlink" {
					link = os.Link
				}
				if err := link(victim, part); err != nil {
					t.Error(err)
				}
				w.Header().Set("ETag", `"e"`)
				w.Write([]byte("payload"))
			}))
			defer srv.Close()
			_, err := Download(context.Background(), srv.URL, DownloadOptions{Path: filepath.Join(dir, "f"), Store: newStore(t), Pipeline: fastPipeline})
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("err = %v, want ErrInvalid", err)
			}
			if b, _ := os.ReadFile(victim); string(b) != "keep me" {
				t.Fatalf("victim overwritten: %q", b)
			}
		})
	}
}

// Two uploads of one file to one endpoint at once: the second is refused
// with ErrLocked before it sends anything; the first completes.
func TestUploadOneAtATime(t *testing.T) {
	m, srv := newMiniTus(t)
	data := testData(600_000, 5)
	src := writeSrc(t, data)
	store := newStore(t)
	inPatch, release := make(chan struct{}), make(chan struct{})
	var once atomic.Bool
	m.before = func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodPatch && once.CompareAndSwap(false, true) {
			close(inPatch)
			<-release
		}
		return false
	}
	opts := UploadOptions{Store: store, ChunkSize: 200_000, Pipeline: fastPipeline}
	first := make(chan error, 1)
	endpoint := srv.URL + "/files/?token=s3cret"
	go func() { _, err := Upload(context.Background(), src, endpoint, opts); first <- err }()
	<-inPatch
	m.mu.Lock()
	sent := len(m.methods)
	m.mu.Unlock()
	second := opts
	second.StartOver = true
	_, err := Upload(context.Background(), src, endpoint, second)
	m.mu.Lock()
	sentAfter := len(m.methods)
	m.mu.Unlock()
	close(release)
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), fmt.Sprintf("pid %d ", os.Getpid())) {
		t.Errorf("second upload: err = %v, want ErrLocked naming pid %d", err, os.Getpid())
	}
	if strings.Contains(fmt.Sprint(err), "s3cret") {
		t.Errorf("the error shows the URL's query: %v", err)
	}
	if sentAfter != sent {
		t.Errorf("the refused upload sent %d requests", sentAfter-sent)
	}
	if err := <-first; err != nil {
		t.Fatalf("first upload: %v", err)
	}
	if !bytes.Equal(m.content("/files/1"), data) {
		t.Fatal("server holds other bytes")
	}
	if entries, _ := os.ReadDir(store.dir); len(entries) != 0 {
		t.Fatalf("state or lock left after completion: %v", entries)
	}
}
