package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	toxiclient "github.com/Shopify/toxiproxy/v2/client"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"github.com/tus/tusd/v2/pkg/filestore"
	"github.com/tus/tusd/v2/pkg/handler"
	"github.com/tus/tusd/v2/pkg/memorylocker"
	"golang.org/x/exp/slog"

	"github.com/rebound-go/rebound"
	"github.com/rebound-go/rebound/transfer"
)

// trBuildCLI builds the rebound binary from this checkout into t.TempDir().
func trBuildCLI(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "rebound")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/rebound")
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// trData returns n deterministic pseudo-random bytes.
func trData(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed+1))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := r.Uint64()
		for j := 0; j < 8; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

func trSum(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

func trCheckFile(t *testing.T, path string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: %d bytes, sha256 %s; want %d bytes, sha256 %s", path, len(got), trSum(got), len(want), trSum(want))
	}
}

// trLog records, per request, its Range header and the body bytes sent.
type trLog struct {
	mu     sync.Mutex
	ranges []string
	bytes  []int64
}

func (l *trLog) start(r *http.Request) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ranges = append(l.ranges, r.Header.Get("Range"))
	l.bytes = append(l.bytes, 0)
	return len(l.ranges) - 1
}

func (l *trLog) add(i, n int) {
	l.mu.Lock()
	l.bytes[i] += int64(n)
	l.mu.Unlock()
}

func (l *trLog) snapshot() ([]string, []int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.ranges...), append([]int64(nil), l.bytes...)
}

// trCountWriter counts the body bytes a handler writes.
type trCountWriter struct {
	http.ResponseWriter
	log *trLog
	i   int
}

func (w trCountWriter) Write(p []byte) (int, error) {
	n, err := w.ResponseWriter.Write(p)
	w.log.add(w.i, n)
	return n, err
}

// trToxiproxy starts an in-process toxiproxy and a proxy named name in front
// of upstream; it returns the proxy (for toxics) and its listen address.
func trToxiproxy(t *testing.T, name, upstream string) (*toxiclient.Proxy, string) {
	t.Helper()
	srv := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())
	api := httptest.NewServer(srv.Routes())
	t.Cleanup(api.Close)
	c := toxiclient.NewClient(api.URL)
	p, err := c.CreateProxy(name, "127.0.0.1:0", upstream)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Delete() })
	return p, p.Listen
}

// trContent serves a versioned file with http.ServeContent (Range, If-Range,
// 206, 416) and its ETag; version(i) picks the content for request i.
func trContent(log *trLog, version func(i int) (etag string, data []byte)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		i := log.start(r)
		etag, data := version(i)
		w.Header().Set("ETag", etag)
		http.ServeContent(trCountWriter{w, log, i}, r, "f.bin", time.Unix(1700000000, 0), bytes.NewReader(data))
	}
}

var trFast = &rebound.Pipeline{Retry: rebound.Retry{Backoff: rebound.NoDelay, MaxAttempts: 5}}

// limit_data cuts every connection after 700 kB: the download is cut again
// and again mid-body, resumes each time, and completes intact.
func TestDownloadToxiproxyCuts(t *testing.T) {
	data := trData(6<<20, 1)
	var log trLog
	srv := httptest.NewServer(trContent(&log, func(int) (string, []byte) { return `"v1"`, data }))
	defer srv.Close()
	proxy, addr := trToxiproxy(t, "cuts", srv.Listener.Addr().String())
	if _, err := proxy.AddToxic("cut", "limit_data", "downstream", 1, toxiclient.Attributes{"bytes": 700_000}); err != nil {
		t.Fatal(err)
	}
	store, _ := transfer.NewFileStateStore(t.TempDir())
	out := filepath.Join(t.TempDir(), "f.bin")
	var cuts int
	res, err := transfer.Download(context.Background(), "http://"+addr+"/f.bin", transfer.DownloadOptions{
		Path: out, Store: store, Pipeline: trFast, SHA256: trSum(data),
		OnEvent: func(ev transfer.Event) {
			if ev.Type == transfer.EventRetry {
				cuts++
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	trCheckFile(t, out, data)
	ranges, _ := log.snapshot()
	if cuts < 6 || len(ranges) < 7 || res.Restarts != 0 {
		t.Fatalf("%d cuts, %d requests, %d restarts; want ≥ 6 cuts, ≥ 7 requests, no restart", cuts, len(ranges), res.Restarts)
	}
	for i, r := range ranges[1:] {
		if !strings.HasPrefix(r, "bytes=") {
			t.Fatalf("request %d asked for %q, not a resume", i+1, r)
		}
	}
	t.Logf("%d cuts, %d requests, verified %s", cuts, len(ranges), res.Verified)
}

// The file changes on the server while the download is cut: the resume's
// If-Range no longer matches, the server answers 200, and the download
// starts over with the new content.
func TestDownloadToxiproxyFileChanges(t *testing.T) {
	v1, v2 := trData(3<<20, 2), trData(3<<20+1234, 3)
	var log trLog
	srv := httptest.NewServer(trContent(&log, func(i int) (string, []byte) {
		if i == 0 {
			return `"v1"`, v1
		}
		return `"v2"`, v2
	}))
	defer srv.Close()
	proxy, addr := trToxiproxy(t, "changes", srv.Listener.Addr().String())
	if _, err := proxy.AddToxic("cut", "limit_data", "downstream", 1, toxiclient.Attributes{"bytes": 1_000_000}); err != nil {
		t.Fatal(err)
	}
	store, _ := transfer.NewFileStateStore(t.TempDir())
	out := filepath.Join(t.TempDir(), "f.bin")
	var reasons []string
	res, err := transfer.Download(context.Background(), "http://"+addr+"/f.bin", transfer.DownloadOptions{
		Path: out, Store: store, Pipeline: trFast,
		OnEvent: func(ev transfer.Event) {
			if ev.Type == transfer.EventRestart {
				reasons = append(reasons, ev.Reason)
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	trCheckFile(t, out, v2)
	ranges, _ := log.snapshot()
	if res.Restarts != 1 || len(reasons) != 1 || !strings.Contains(reasons[0], "whole file") || ranges[1] == "" {
		t.Fatalf("restarts %d %q, ranges %q", res.Restarts, reasons, ranges)
	}
}

// A server that ignores Range, behind a proxy that cuts every connection:
// the download never gets past the first cut, so it must give up (bounded)
// instead of looping; it never appends a whole body to the .part. Once the
// cuts stop, the same download starts over and completes.
func TestDownloadToxiproxyIgnoresRange(t *testing.T) {
	data := trData(3<<20, 4)
	var log trLog
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := log.start(r)
		w.Header().Set("ETag", `"v1"`)
		w.Header().Set("Content-Length", fmt.Sprint(len(data)))
		trCountWriter{w, &log, i}.Write(data)
	}))
	defer srv.Close()
	proxy, addr := trToxiproxy(t, "ignores", srv.Listener.Addr().String())
	if _, err := proxy.AddToxic("cut", "limit_data", "downstream", 1, toxiclient.Attributes{"bytes": 1_000_000}); err != nil {
		t.Fatal(err)
	}
	store, _ := transfer.NewFileStateStore(t.TempDir())
	out := filepath.Join(t.TempDir(), "f.bin")
	u := "http://" + addr + "/f.bin"
	_, err := transfer.Download(context.Background(), u, transfer.DownloadOptions{Path: out, Store: store, Pipeline: trFast})
	var re *rebound.RetryError
	if !errors.As(err, &re) {
		t.Fatalf("err = %v, want a RetryError after the attempts ran out", err)
	}
	part, err := os.ReadFile(out + ".part")
	if err != nil || len(part) == 0 || len(part) >= len(data) || !bytes.Equal(part, data[:len(part)]) {
		t.Fatalf(".part has %d bytes (err %v); want a true prefix of the file", len(part), err)
	}
	if err := proxy.RemoveToxic("cut"); err != nil {
		t.Fatal(err)
	}
	res, err := transfer.Download(context.Background(), u, transfer.DownloadOptions{Path: out, Store: store, Pipeline: trFast})
	if err != nil {
		t.Fatal(err)
	}
	trCheckFile(t, out, data)
	if !res.Resumed || res.Restarts != 1 {
		t.Fatalf("result %+v: want a resume that started over once", res)
	}
}

// A server that lies in Content-Range (wrong start, wrong total) on resumes:
// the client never appends those bytes; it starts over and completes.
func TestDownloadToxiproxyLyingContentRange(t *testing.T) {
	data := trData(3<<20, 5)
	for _, lie := range []struct {
		name string
		cr   func(start int) string
	}{
		{"wrong start", func(start int) string { return fmt.Sprintf("bytes %d-%d/%d", start+4096, len(data)-1, len(data)) }},
		{"wrong total", func(start int) string { return fmt.Sprintf("bytes %d-%d/%d", start, len(data)+99, len(data)+100) }},
	} {
		t.Run(lie.name, func(t *testing.T) {
			var log trLog
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				i := log.start(r)
				w.Header().Set("ETag", `"v1"`)
				var start int
				if _, err := fmt.Sscanf(r.Header.Get("Range"), "bytes=%d-", &start); err != nil {
					w.Header().Set("Content-Length", fmt.Sprint(len(data)))
					trCountWriter{w, &log, i}.Write(data)
					return
				}
				w.Header().Set("Content-Range", lie.cr(start))
				w.WriteHeader(http.StatusPartialContent)
				trCountWriter{w, &log, i}.Write(data[start:])
			}))
			defer srv.Close()
			proxy, addr := trToxiproxy(t, "lies", srv.Listener.Addr().String())
			if _, err := proxy.AddToxic("cut", "limit_data", "downstream", 1, toxiclient.Attributes{"bytes": 1_000_000}); err != nil {
				t.Fatal(err)
			}
			store, _ := transfer.NewFileStateStore(t.TempDir())
			out := filepath.Join(t.TempDir(), "f.bin")
			u := "http://" + addr + "/f.bin"
			once := &rebound.Pipeline{Retry: rebound.Retry{Backoff: rebound.NoDelay, MaxAttempts: 1}}
			if _, err := transfer.Download(context.Background(), u, transfer.DownloadOptions{Path: out, Store: store, Pipeline: once}); err == nil {
				t.Fatal("completed through a proxy that cuts every connection")
			}
			part, _ := os.ReadFile(out + ".part")
			if len(part) == 0 || !bytes.Equal(part, data[:len(part)]) {
				t.Fatalf(".part (%d bytes) is not a true prefix", len(part))
			}
			proxy.RemoveToxic("cut")
			res, err := transfer.Download(context.Background(), u, transfer.DownloadOptions{Path: out, Store: store, Pipeline: trFast})
			if err != nil {
				t.Fatal(err)
			}
			trCheckFile(t, out, data)
			if res.Restarts != 1 {
				t.Fatalf("result %+v, want one restart", res)
			}
		})
	}
}

// trSlowWriter sends a body in 16 KiB pieces, flushing each and pausing, so
// that a test has time to kill the client mid-body.
type trSlowWriter struct {
	trCountWriter
	pause time.Duration
}

func (w trSlowWriter) Write(p []byte) (int, error) {
	var done int
	for len(p) > 0 {
		k := min(16<<10, len(p))
		n, err := w.trCountWriter.Write(p[:k])
		done += n
		if err != nil {
			return done, err
		}
		w.ResponseWriter.(http.Flusher).Flush()
		p = p[k:]
		time.Sleep(w.pause) // the peer's pace, not a wait in the test
	}
	return done, nil
}

// trKillWhen runs the CLI (started with --json) and calls until on each event line; when
// until returns true the process is killed with SIGKILL.
func trKillWhen(t *testing.T, cmd *exec.Cmd, until func(ev map[string]any) bool) {
	t.Helper()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	killed := false
	for sc.Scan() {
		var ev map[string]any
		if json.Unmarshal(sc.Bytes(), &ev) == nil && until(ev) {
			cmd.Process.Kill()
			killed = true
			break
		}
	}
	io.Copy(io.Discard, stdout)
	err = cmd.Wait()
	if !killed {
		t.Fatalf("the process ended before it could be killed: %v\n%s", err, stderr.String())
	}
}

// SIGKILL the real `rebound get` mid-download, run the same command again:
// it completes, the SHA-256 matches, and the resume asks for exactly the
// bytes the .part did not have.
func TestGetSIGKILLResume(t *testing.T) {
	bin := trBuildCLI(t)
	data := trData(6<<20, 6)
	var log trLog
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := log.start(r)
		w.Header().Set("ETag", `"v1"`)
		http.ServeContent(trSlowWriter{trCountWriter{w, &log, i}, 4 * time.Millisecond}, r, "f.bin", time.Unix(1700000000, 0), bytes.NewReader(data))
	}))
	defer srv.Close()
	dir, stateDir := t.TempDir(), t.TempDir()
	out := filepath.Join(dir, "f.bin")
	args := []string{"get", srv.URL + "/f.bin", "-o", out, "--state-dir", stateDir, "--sha256", trSum(data)}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	trKillWhen(t, exec.CommandContext(ctx, bin, append(args, "--json", "--progress-interval", "10ms")...), func(ev map[string]any) bool {
		done, _ := ev["done"].(float64)
		return ev["event"] == "progress" && done >= 1<<20
	})
	fi, err := os.Stat(out + ".part")
	if err != nil {
		t.Fatal(err)
	}
	partSize := fi.Size()
	if partSize < 1<<20 || partSize >= int64(len(data)) {
		t.Fatalf(".part has %d bytes after the kill", partSize)
	}
	_, before := log.snapshot()

	if b, err := exec.CommandContext(ctx, bin, args...).CombinedOutput(); err != nil {
		t.Fatalf("second run: %v\n%s", err, b)
	}
	trCheckFile(t, out, data)
	srv.Close() // waits for the handlers, so their counts are final
	ranges, served := log.snapshot()
	if len(ranges) != len(before)+1 {
		t.Fatalf("requests %q: want exactly one resume request", ranges)
	}
	resume := len(ranges) - 1
	if want := fmt.Sprintf("bytes=%d-", partSize); ranges[resume] != want {
		t.Fatalf("resume asked %q; the .part had %d bytes", ranges[resume], partSize)
	}
	if served[resume] != int64(len(data))-partSize {
		t.Fatalf("resume fetched %d bytes; %d were missing", served[resume], int64(len(data))-partSize)
	}
	t.Logf("killed at %d of %d bytes; resume fetched %d bytes", partSize, len(data), served[resume])
}

// trTusd is an embedded tusd (file store) behind a wrapper that counts, per
// PATCH, the bytes tusd reads, can slow PATCH bodies down, and can step in
// before tusd (hook).
type trTusd struct {
	srv   *httptest.Server
	dir   string
	pause time.Duration // per 8 KiB of PATCH body

	mu       sync.Mutex
	patches  []int64 // body bytes tusd read, per PATCH
	offsets  []string
	heads    int
	midChunk chan struct{} // gets a value when a PATCH has passed halfway
	half     int64
	hook     func(w http.ResponseWriter, r *http.Request) bool // true: answered, tusd skipped
}

// trTusdHandler is tusd with its file store in dir, mounted at /files/.
func trTusdHandler(tb testing.TB, dir string) http.Handler {
	composer := handler.NewStoreComposer()
	filestore.New(dir).UseIn(composer)
	memorylocker.New().UseIn(composer)
	h, err := handler.NewHandler(handler.Config{BasePath: "/files/", StoreComposer: composer,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		tb.Fatal(err)
	}
	return http.StripPrefix("/files/", h)
}

// trStartTusdB is a bare embedded tusd for benchmarks.
func trStartTusdB(b *testing.B) *httptest.Server {
	srv := httptest.NewServer(trTusdHandler(b, b.TempDir()))
	b.Cleanup(srv.Close)
	return srv
}

func trStartTusd(t *testing.T) *trTusd {
	t.Helper()
	ts := &trTusd{dir: t.TempDir(), midChunk: make(chan struct{}, 1)}
	tusd := trTusdHandler(t, ts.dir)
	ts.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ts.mu.Lock()
		hook := ts.hook
		if r.Method == http.MethodHead {
			ts.heads++
		}
		ts.mu.Unlock()
		if hook != nil && hook(w, r) {
			return
		}
		if r.Method == http.MethodPatch {
			ts.mu.Lock()
			ts.patches = append(ts.patches, 0)
			ts.offsets = append(ts.offsets, r.Header.Get("Upload-Offset"))
			i := len(ts.patches) - 1
			ts.mu.Unlock()
			r.Body = &trPatchBody{r: r.Body, ts: ts, i: i}
		}
		tusd.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.srv.Close)
	return ts
}

type trPatchBody struct {
	r      io.ReadCloser
	ts     *trTusd
	i      int
	n      int64
	signal bool
}

func (b *trPatchBody) Read(p []byte) (int, error) {
	if len(p) > 8<<10 {
		p = p[:8<<10]
	}
	n, err := b.r.Read(p)
	b.n += int64(n)
	b.ts.mu.Lock()
	b.ts.patches[b.i] += int64(n)
	pause, half := b.ts.pause, b.ts.half
	b.ts.mu.Unlock()
	if half > 0 && b.n >= half && !b.signal {
		b.signal = true
		select {
		case b.ts.midChunk <- struct{}{}:
		default:
		}
	}
	if pause > 0 && n > 0 {
		time.Sleep(pause) // the server's pace, not a wait in the test
	}
	return n, err
}

func (b *trPatchBody) Close() error { return b.r.Close() }

func (ts *trTusd) setHook(h func(w http.ResponseWriter, r *http.Request) bool) {
	ts.mu.Lock()
	ts.hook = h
	ts.mu.Unlock()
}

func (ts *trTusd) received() (total int64, patches int) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	for _, n := range ts.patches {
		total += n
	}
	return total, len(ts.patches)
}

// SIGKILL the real `rebound upload` five times mid-chunk; the same command
// then completes, tusd's file is byte-identical, and each interruption
// re-sent at most one chunk.
func TestUploadSIGKILLResume(t *testing.T) {
	bin := trBuildCLI(t)
	const chunk = 256 << 10
	data := trData(4<<20, 7)
	src := filepath.Join(t.TempDir(), "src.bin")
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}
	ts := trStartTusd(t)
	ts.mu.Lock()
	ts.pause, ts.half = time.Millisecond, chunk/2
	ts.mu.Unlock()
	stateDir := t.TempDir()
	args := []string{"upload", src, ts.srv.URL + "/files/", "--state-dir", stateDir, "--chunk-size", "256KiB"}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	const kills = 5
	for k := 0; k < kills; k++ {
		select {
		case <-ts.midChunk: // a signal left from the previous run
		default:
		}
		cmd := exec.CommandContext(ctx, bin, args...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		select {
		case <-ts.midChunk:
			cmd.Process.Kill()
			<-exited
		case err := <-exited:
			t.Fatalf("run %d ended before it could be killed: %v\n%s", k+1, err, stderr.String())
		}
	}
	sentBefore, _ := ts.received()
	if sentBefore >= int64(len(data)) {
		t.Fatalf("%d bytes sent before the last run; the kills came too late to test anything", sentBefore)
	}
	out, err := exec.CommandContext(ctx, bin, args...).Output()
	if err != nil {
		var ee *exec.ExitError
		errors.As(err, &ee)
		t.Fatalf("final run: %v\n%s", err, ee.Stderr)
	}
	uploadURL := strings.TrimSpace(string(out))
	id := uploadURL[strings.LastIndex(uploadURL, "/")+1:]
	trCheckFile(t, filepath.Join(ts.dir, id), data)
	total, patches := ts.received()
	resent := total - int64(len(data))
	if resent < 0 || resent > kills*chunk {
		t.Fatalf("tusd received %d bytes for a %d-byte file: %d re-sent over %d kills (limit one chunk each)", total, len(data), resent, kills)
	}
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.heads < kills {
		t.Fatalf("%d HEAD requests; each resumed run should ask the server its offset", ts.heads)
	}
	t.Logf("%d kills, %d PATCHes, %d bytes received for %d (re-sent %d), %d HEADs", kills, patches, total, len(data), resent, ts.heads)
}

func trUploadFile(t *testing.T, n int, seed uint64) (string, []byte) {
	data := trData(n, seed)
	src := filepath.Join(t.TempDir(), "src.bin")
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return src, data
}

// A kept upload URL that the server forgot (404 after termination) starts a
// new upload, which completes.
func TestUploadForgottenURLStartsOver(t *testing.T) {
	ts := trStartTusd(t)
	src, data := trUploadFile(t, 1<<20, 8)
	store, _ := transfer.NewFileStateStore(t.TempDir())
	ts.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodPatch && r.Header.Get("Upload-Offset") != "0" {
			w.WriteHeader(http.StatusBadRequest) // stop the first run after one chunk, for good
			return true
		}
		return false
	})
	opts := transfer.UploadOptions{Store: store, ChunkSize: 256 << 10, Pipeline: trFast}
	if _, err := transfer.Upload(context.Background(), src, ts.srv.URL+"/files/", opts); err == nil {
		t.Fatal("first run completed despite the failing server")
	}
	fp, _ := transfer.Fingerprint(src)
	st, ok, err := store.Load(context.Background(), "upload "+ts.srv.URL+"/files/ "+fp)
	if !ok || err != nil || st.UploadURL == "" || st.Offset != 256<<10 {
		t.Fatalf("kept state %+v %v %v", st, ok, err)
	}
	req, _ := http.NewRequest(http.MethodDelete, st.UploadURL, nil)
	req.Header.Set("Tus-Resumable", "1.0.0")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("terminate: %v %v", resp, err)
	}
	ts.setHook(nil)
	res, err := transfer.Upload(context.Background(), src, ts.srv.URL+"/files/", opts)
	if err != nil {
		t.Fatal(err)
	}
	if res.URL == st.UploadURL || res.Created != 1 || !res.Resumed {
		t.Fatalf("result %+v; the old URL was %s", res, st.UploadURL)
	}
	trCheckFile(t, filepath.Join(ts.dir, res.URL[strings.LastIndex(res.URL, "/")+1:]), data)
}

// A 409 (offset mismatch) makes the client ask the server (HEAD) and go on.
func TestUploadConflictResyncs(t *testing.T) {
	ts := trStartTusd(t)
	src, data := trUploadFile(t, 1<<20, 9)
	var conflicts atomic.Int32
	ts.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodPatch && r.Header.Get("Upload-Offset") == fmt.Sprint(512<<10) && conflicts.Add(1) == 1 {
			w.Header().Set("Tus-Resumable", "1.0.0")
			http.Error(w, "ERR_MISMATCHED_OFFSET", http.StatusConflict)
			return true
		}
		return false
	})
	store, _ := transfer.NewFileStateStore(t.TempDir())
	res, err := transfer.Upload(context.Background(), src, ts.srv.URL+"/files/", transfer.UploadOptions{Store: store, ChunkSize: 256 << 10, Pipeline: trFast})
	if err != nil {
		t.Fatal(err)
	}
	trCheckFile(t, filepath.Join(ts.dir, res.URL[strings.LastIndex(res.URL, "/")+1:]), data)
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if conflicts.Load() != 2 || ts.heads != 1 { // the 409, then the accepted retry
		t.Fatalf("%d PATCHes at the conflict offset, %d HEADs; want 2 and 1", conflicts.Load(), ts.heads)
	}
}

// When OPTIONS advertises the checksum extension, every PATCH carries a
// correct Upload-Checksum (the wrapper checks it, as a server would).
func TestUploadChecksumWhenAdvertised(t *testing.T) {
	ts := trStartTusd(t)
	src, data := trUploadFile(t, 700_000, 10)
	var checked, wrong atomic.Int32
	ts.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		switch r.Method {
		case http.MethodOptions:
			w.Header().Set("Tus-Resumable", "1.0.0")
			w.Header().Set("Tus-Version", "1.0.0")
			w.Header().Set("Tus-Extension", "creation,termination,checksum")
			w.Header().Set("Tus-Checksum-Algorithm", "md5,sha1")
			w.WriteHeader(http.StatusNoContent)
			return true
		case http.MethodPatch:
			body, _ := io.ReadAll(r.Body)
			s := sha1.Sum(body)
			if r.Header.Get("Upload-Checksum") == "sha1 "+base64.StdEncoding.EncodeToString(s[:]) {
				checked.Add(1)
			} else {
				wrong.Add(1)
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		return false
	})
	store, _ := transfer.NewFileStateStore(t.TempDir())
	res, err := transfer.Upload(context.Background(), src, ts.srv.URL+"/files/", transfer.UploadOptions{Store: store, ChunkSize: 256 << 10, Pipeline: trFast})
	if err != nil {
		t.Fatal(err)
	}
	trCheckFile(t, filepath.Join(ts.dir, res.URL[strings.LastIndex(res.URL, "/")+1:]), data)
	if checked.Load() != 3 || wrong.Load() != 0 {
		t.Fatalf("%d PATCHes with a good checksum, %d without; want 3 and 0", checked.Load(), wrong.Load())
	}
}

// SIGINT stops `rebound get` with exit code 130, keeping the .part and the
// state; the same command then resumes and completes.
func TestGetSIGINTExit130(t *testing.T) {
	bin := trBuildCLI(t)
	data := trData(4<<20, 12)
	var log trLog
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := log.start(r)
		w.Header().Set("ETag", `"v1"`)
		http.ServeContent(trSlowWriter{trCountWriter{w, &log, i}, 4 * time.Millisecond}, r, "f.bin", time.Unix(1700000000, 0), bytes.NewReader(data))
	}))
	defer srv.Close()
	out, stateDir := filepath.Join(t.TempDir(), "f.bin"), t.TempDir()
	args := []string{"get", srv.URL + "/f.bin", "-o", out, "--state-dir", stateDir}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append(args, "--json", "--progress-interval", "10ms")...)
	stdout, _ := cmd.StdoutPipe()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		var ev map[string]any
		if json.Unmarshal(sc.Bytes(), &ev) == nil && ev["event"] == "progress" && ev["done"].(float64) >= 512<<10 {
			cmd.Process.Signal(os.Interrupt)
			break
		}
	}
	io.Copy(io.Discard, stdout)
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 130 {
		t.Fatalf("exit %v, want 130\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "run the same command again") {
		t.Fatalf("stderr does not say how to resume:\n%s", stderr.String())
	}
	fi, err := os.Stat(out + ".part")
	if err != nil || fi.Size() < 512<<10 {
		t.Fatalf(".part after SIGINT: %v", err)
	}
	if entries, _ := os.ReadDir(stateDir); len(entries) != 1 {
		t.Fatalf("state dir holds %d files, want the one state file", len(entries))
	}
	if b, err := exec.CommandContext(ctx, bin, args...).CombinedOutput(); err != nil || !strings.Contains(string(b), "resumed") {
		t.Fatalf("second run: %v\n%s", err, b)
	}
	trCheckFile(t, out, data)
}
