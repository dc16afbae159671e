package transfer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rebound-go/rebound/reboundtest"
)

// miniTus is a small in-memory tus 1.0 server (core + creation) for unit
// tests; the e2e module tests against the real tusd. before, if set, may
// answer a request itself.
type miniTus struct {
	mu      sync.Mutex
	uploads map[string]*bytes.Buffer
	lengths map[string]int64
	n       int
	options http.Header
	before  func(w http.ResponseWriter, r *http.Request) bool
	methods []string
}

func newMiniTus(t *testing.T) (*miniTus, *httptest.Server) {
	m := &miniTus{uploads: map[string]*bytes.Buffer{}, lengths: map[string]int64{}}
	srv := httptest.NewServer(m)
	t.Cleanup(srv.Close)
	return m, srv
}

func (m *miniTus) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	m.mu.Lock()
	m.methods = append(m.methods, r.Method)
	before := m.before
	m.mu.Unlock()
	if before != nil && before(w, r) {
		return
	}
	w.Header().Set("Tus-Resumable", "1.0.0")
	if r.Header.Get("Tus-Resumable") != "1.0.0" && r.Method != http.MethodOptions {
		w.WriteHeader(http.StatusPreconditionFailed)
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	switch r.Method {
	case http.MethodOptions:
		for k, v := range m.options {
			w.Header()[k] = v
		}
		w.WriteHeader(http.StatusNoContent)
	case http.MethodPost:
		n, err := strconv.ParseInt(r.Header.Get("Upload-Length"), 10, 64)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		m.n++
		id := fmt.Sprintf("/files/%d", m.n)
		m.uploads[id], m.lengths[id] = &bytes.Buffer{}, n
		w.Header().Set("Location", id)
		w.WriteHeader(http.StatusCreated)
	case http.MethodHead:
		b, ok := m.uploads[r.URL.Path]
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		w.Header().Set("Upload-Offset", fmt.Sprint(b.Len()))
		w.Header().Set("Upload-Length", fmt.Sprint(m.lengths[r.URL.Path]))
	case http.MethodPatch:
		b, ok := m.uploads[r.URL.Path]
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		if r.Header.Get("Upload-Offset") != fmt.Sprint(b.Len()) || r.Header.Get("Content-Type") != "application/offset+octet-stream" {
			w.WriteHeader(http.StatusConflict)
			return
		}
		io.Copy(b, r.Body)
		w.Header().Set("Upload-Offset", fmt.Sprint(b.Len()))
		w.WriteHeader(http.StatusNoContent)
	case http.MethodDelete:
		delete(m.uploads, r.URL.Path)
		w.WriteHeader(http.StatusNoContent)
	}
}

func (m *miniTus) content(id string) []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.uploads[id].Bytes()
}

func writeSrc(t *testing.T, data []byte) string {
	p := filepath.Join(t.TempDir(), "src.bin")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestUploadMiniTus(t *testing.T) {
	m, srv := newMiniTus(t)
	data := testData(1<<20+5, 20)
	src := writeSrc(t, data)
	store := newStore(t)
	var progress []int64
	res, err := Upload(context.Background(), src, srv.URL+"/files/", UploadOptions{Store: store, ChunkSize: 300_000,
		OnEvent: func(ev Event) {
			if ev.Type == EventProgress {
				progress = append(progress, ev.Done)
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(m.content("/files/1"), data) || res.URL != srv.URL+"/files/1" || res.Created != 1 {
		t.Fatalf("result %+v; server holds %d bytes", res, len(m.content("/files/1")))
	}
	if fmt.Sprint(progress) != "[300000 600000 900000 1048581]" {
		t.Fatalf("progress %v", progress)
	}
	if entries, _ := os.ReadDir(store.dir); len(entries) != 0 {
		t.Fatalf("state left after completion: %v", entries)
	}
}

// A PATCH whose body the server stops taking is cut by the stall timeout
// (fake clock); the client asks the server's offset and sends again. The
// chunk is larger than loopback's socket buffers can absorb, so the client
// really is stuck writing. (A server that takes the whole body and never
// answers is the client's response-header timeout's job.)
func TestUploadStall(t *testing.T) {
	m, srv := newMiniTus(t)
	data := testData(33<<20, 21)
	src := writeSrc(t, data)
	clock := reboundtest.NewClock(time.Unix(0, 0))
	hung, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	m.before = func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodPatch {
			return false
		}
		first := false
		once.Do(func() { first = true })
		if !first {
			return false
		}
		close(hung)
		// Take nothing. (The server notices a closed connection only once
		// the body is read, so the test releases the handler at the end.)
		select {
		case <-r.Context().Done():
		case <-release:
		}
		return true
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	retried := make(chan struct{})
	go func() {
		<-hung
		advanceUntil(ctx, clock, DefaultStallTimeout, retried)
	}()
	var retries []error
	defer close(release)
	_, err := Upload(ctx, src, srv.URL+"/files/", UploadOptions{Store: newStore(t), Clock: clock, Pipeline: fastPipeline, ChunkSize: 64 << 20,
		OnEvent: func(ev Event) {
			if ev.Type == EventRetry {
				if len(retries) == 0 {
					close(retried)
				}
				retries = append(retries, ev.Err)
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(m.content("/files/1"), data) {
		t.Fatal("server content differs")
	}
	if len(retries) != 1 || !errors.Is(retries[0], ErrStalled) {
		t.Fatalf("retries %v, want one ErrStalled", retries)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if got := strings.Join(m.methods, " "); got != "OPTIONS POST PATCH HEAD PATCH" {
		t.Fatalf("requests %s", got)
	}
}

func TestUploadServerLimits(t *testing.T) {
	m, srv := newMiniTus(t)
	src := writeSrc(t, testData(1000, 22))
	m.options = http.Header{"Tus-Version": {"1.0.0"}, "Tus-Max-Size": {"999"}}
	_, err := Upload(context.Background(), src, srv.URL+"/files/", UploadOptions{Store: newStore(t), Pipeline: fastPipeline})
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "at most 999") {
		t.Fatalf("err = %v", err)
	}
	m.options = http.Header{"Tus-Version": {"0.2.2"}}
	_, err = Upload(context.Background(), src, srv.URL+"/files/", UploadOptions{Store: newStore(t), Pipeline: fastPipeline})
	if err == nil || !strings.Contains(err.Error(), "speaks tus 0.2.2") {
		t.Fatalf("err = %v", err)
	}
}

// StartOver terminates the kept upload when the server offers termination.
func TestUploadStartOverTerminates(t *testing.T) {
	m, srv := newMiniTus(t)
	data := testData(500_000, 23)
	src := writeSrc(t, data)
	store := newStore(t)
	m.options = http.Header{"Tus-Version": {"1.0.0"}, "Tus-Extension": {"creation,termination"}}
	m.before = func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodPatch && r.Header.Get("Upload-Offset") != "0" {
			w.WriteHeader(http.StatusForbidden) // ends the first run for good
			return true
		}
		return false
	}
	if _, err := Upload(context.Background(), src, srv.URL+"/files/", UploadOptions{Store: store, ChunkSize: 100_000, Pipeline: fastPipeline}); err == nil {
		t.Fatal("first run completed")
	}
	m.mu.Lock()
	m.before = nil
	m.mu.Unlock()
	res, err := Upload(context.Background(), src, srv.URL+"/files/", UploadOptions{Store: store, ChunkSize: 100_000, StartOver: true})
	if err != nil {
		t.Fatal(err)
	}
	m.mu.Lock()
	_, old := m.uploads["/files/1"]
	m.mu.Unlock()
	if old || res.URL != srv.URL+"/files/2" || res.Resumed || !bytes.Equal(m.content("/files/2"), data) {
		t.Fatalf("old upload kept: %v, result %+v", old, res)
	}
}

// Credentials in a URL never reach the state file (nor its name).
func TestDownloadStateHasNoPassword(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", `"e"`)
		w.Header().Set("Content-Length", "100")
		w.Write(make([]byte, 10))
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	defer srv.Close()
	store := newStore(t)
	u := strings.Replace(srv.URL, "http://", "http://user:s3cret@", 1)
	ctx, cancel := context.WithCancel(context.Background())
	_, err := Download(ctx, u, DownloadOptions{Path: filepath.Join(t.TempDir(), "f"), Store: store,
		OnEvent: func(ev Event) {
			if ev.Type == EventProgress && ev.Done == 10 {
				cancel() // interrupted after the first bytes are on disk
			}
		}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	entries, _ := os.ReadDir(store.dir)
	if len(entries) != 1 {
		t.Fatalf("state files: %v", entries)
	}
	b, _ := os.ReadFile(filepath.Join(store.dir, entries[0].Name()))
	if strings.Contains(string(b)+entries[0].Name(), "s3cret") || !strings.Contains(string(b), `"offset":10`) {
		t.Fatalf("state file %s: %s", entries[0].Name(), b)
	}
}

// A .part that is a symlink is refused, not followed.
func TestDownloadRefusesSymlinkPart(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("x")) }))
	defer srv.Close()
	dir := t.TempDir()
	victim := filepath.Join(t.TempDir(), "victim")
	os.WriteFile(victim, []byte("keep me"), 0o644)
	os.Symlink(victim, filepath.Join(dir, "f.part"))
	_, err := Download(context.Background(), srv.URL, DownloadOptions{Path: filepath.Join(dir, "f"), Store: newStore(t)})
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("err = %v", err)
	}
	if b, _ := os.ReadFile(victim); string(b) != "keep me" {
		t.Fatalf("victim changed: %q", b)
	}
}

func TestUploadEmptyFile(t *testing.T) {
	m, srv := newMiniTus(t)
	src := writeSrc(t, nil)
	res, err := Upload(context.Background(), src, srv.URL+"/files/", UploadOptions{Store: newStore(t)})
	if err != nil || res.Size != 0 || len(m.content("/files/1")) != 0 {
		t.Fatalf("%+v %v", res, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if got := strings.Join(m.methods, " "); got != "OPTIONS POST" {
		t.Fatalf("requests %s", got)
	}
}

// advanceUntil moves the fake clock forward by step, again and again, until
// done is closed or ctx ends. One Advance is not enough on a loaded machine:
// the stall timer may not be armed yet, or a read that lands after the
// Advance moves its deadline; each step waits until some timer is pending.
func advanceUntil(ctx context.Context, clock *reboundtest.Clock, step time.Duration, done <-chan struct{}) {
	for {
		wait, stop := context.WithTimeout(ctx, 50*time.Millisecond)
		ok := clock.BlockUntil(wait, 1) == nil
		stop()
		select {
		case <-done:
			return
		case <-ctx.Done():
			return
		default:
		}
		if ok {
			clock.Advance(step)
		}
	}
}

// A server that loses what it confirmed after every failed PATCH (HEAD back
// to 0) gives no progress: the upload gives up after a bounded number of
// losses instead of re-sending the same chunks for ever (each successful
// PATCH of a lost chunk used to start a fresh attempt count).
func TestUploadGivesUpOnServerLosingProgress(t *testing.T) {
	m, srv := newMiniTus(t)
	src := writeSrc(t, testData(600_000, 22))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var patches int
	m.before = func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodPatch {
			return false
		}
		m.mu.Lock()
		defer m.mu.Unlock()
		if patches++; patches > 100 {
			cancel() // the bound the client failed to keep
		}
		if r.Header.Get("Upload-Offset") == "0" {
			return false
		}
		m.uploads[r.URL.Path].Reset() // lost, and the PATCH fails
		w.WriteHeader(http.StatusServiceUnavailable)
		return true
	}
	_, err := Upload(ctx, src, srv.URL+"/files/", UploadOptions{Store: newStore(t), ChunkSize: 200_000, Pipeline: fastPipeline})
	if err == nil || ctx.Err() != nil || !strings.Contains(err.Error(), "lost confirmed bytes") {
		t.Fatalf("err = %v after %d PATCHes; want a bounded give-up", err, patches)
	}
}

// Retry events carry the offset the server confirmed, not 0.
func TestUploadRetryEventsCarryOffset(t *testing.T) {
	m, srv := newMiniTus(t)
	data := testData(600_000, 23)
	src := writeSrc(t, data)
	var failed bool
	m.before = func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodPatch && r.Header.Get("Upload-Offset") == "200000" && !failed {
			failed = true
			w.WriteHeader(http.StatusServiceUnavailable)
			return true
		}
		return false
	}
	var retries []int64
	_, err := Upload(context.Background(), src, srv.URL+"/files/", UploadOptions{Store: newStore(t), ChunkSize: 200_000, Pipeline: fastPipeline,
		OnEvent: func(ev Event) {
			if ev.Type == EventRetry {
				retries = append(retries, ev.Done)
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(retries) != "[200000]" {
		t.Fatalf("retry events' Done = %v, want [200000]", retries)
	}
	if !bytes.Equal(m.content("/files/1"), data) {
		t.Fatal("server holds other bytes")
	}
}

// A read error names the file once (the *os.PathError names it already).
func TestFingerprintErrorNamesPathOnce(t *testing.T) {
	dir := t.TempDir()
	_, err := Fingerprint(dir) // opens, but cannot be read
	if err == nil || strings.Count(err.Error(), dir) != 1 {
		t.Fatalf("err = %v, want one mention of %s", err, dir)
	}
}
