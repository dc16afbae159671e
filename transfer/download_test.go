package transfer

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rebound-go/rebound"
	"github.com/rebound-go/rebound/reboundhttp"
	"github.com/rebound-go/rebound/reboundtest"
)

// testData returns n deterministic pseudo-random bytes.
func testData(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// fastPipeline retries at once, so tests never wait on backoff.
var fastPipeline = &rebound.Pipeline{Retry: rebound.Retry{Backoff: rebound.NoDelay}}

// served records what a test server was asked and sent.
type served struct {
	mu     sync.Mutex
	ranges []string // the Range header of each request ("" if none)
	ifr    []string // the If-Range header of each request
	bytes  []int64  // bytes written per request
}

func (s *served) record(r *http.Request) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ranges = append(s.ranges, r.Header.Get("Range"))
	s.ifr = append(s.ifr, r.Header.Get("If-Range"))
	s.bytes = append(s.bytes, 0)
	return len(s.ranges) - 1
}

func (s *served) add(i int, n int) {
	s.mu.Lock()
	s.bytes[i] += int64(n)
	s.mu.Unlock()
}

type countingWriter struct {
	http.ResponseWriter
	s *served
	i int
}

func (w countingWriter) Write(p []byte) (int, error) {
	n, err := w.ResponseWriter.Write(p)
	w.s.add(w.i, n)
	return n, err
}

// serveContent is http.ServeContent with an ETag, counting what it serves.
func serveContent(s *served, etag string, data func() []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		i := s.record(r)
		w.Header().Set("ETag", etag)
		http.ServeContent(countingWriter{w, s, i}, r, "f.bin", time.Unix(1700000000, 0), bytes.NewReader(data()))
	}
}

// seed writes a .part holding part and a state as an earlier run would have.
func seed(t *testing.T, store StateStore, rawURL, out string, part []byte, st ResumeState) {
	t.Helper()
	if err := os.WriteFile(out+".part", part, 0o644); err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs(out)
	st.URL, st.Offset = rawURL, int64(len(part))
	if err := store.Save(context.Background(), "get "+rawURL+" -> "+abs, st); err != nil {
		t.Fatal(err)
	}
}

func newStore(t *testing.T) *FileStateStore {
	t.Helper()
	s, err := NewFileStateStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func checkFile(t *testing.T, path string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: %d bytes, differs from the %d expected", path, len(got), len(want))
	}
	for _, ext := range []string{".part", ".part.lock"} {
		if _, err := os.Lstat(path + ext); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s left behind: %v", ext, err)
		}
	}
}

func sha(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

func TestDownloadFresh(t *testing.T) {
	data := testData(1<<20+17, 1)
	var s served
	srv := httptest.NewServer(serveContent(&s, `"v1"`, func() []byte { return data }))
	defer srv.Close()
	store := newStore(t)
	out := filepath.Join(t.TempDir(), "f.bin")
	res, err := Download(context.Background(), srv.URL+"/f.bin", DownloadOptions{Path: out, Store: store, SHA256: sha(data)})
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, out, data)
	if res.Resumed || res.Restarts != 0 || res.Verified != "sha256" || res.Size != int64(len(data)) {
		t.Fatalf("result %+v", res)
	}
	if entries, _ := os.ReadDir(store.dir); len(entries) != 0 {
		t.Fatalf("state left behind: %v", entries)
	}
}

// The answer cases of a resumed download, each against a server that answers
// the Range request in one particular way.
func TestDownloadResumeAnswers(t *testing.T) {
	data := testData(300_000, 2)
	newData := testData(280_000, 3)
	const n = 100_000
	cases := []struct {
		name         string
		part         []byte // the .part from the earlier run
		st           ResumeState
		handler      func(s *served) http.HandlerFunc
		want         []byte
		restarts     int
		firstRange   string
		resumedBytes int64 // bytes served to the first request
	}{
		{
			name: "206 appends", part: data[:n], st: ResumeState{Size: int64(len(data)), ETag: `"v1"`},
			handler: func(s *served) http.HandlerFunc { return serveContent(s, `"v1"`, func() []byte { return data }) },
			want:    data, firstRange: "bytes=100000-", resumedBytes: int64(len(data) - n),
		},
		{
			name: "Last-Modified validator", part: data[:n], st: ResumeState{Size: int64(len(data)), LastModified: time.Unix(1700000000, 0).UTC().Format(http.TimeFormat)},
			handler: func(s *served) http.HandlerFunc {
				return func(w http.ResponseWriter, r *http.Request) {
					i := s.record(r)
					http.ServeContent(countingWriter{w, s, i}, r, "f.bin", time.Unix(1700000000, 0), bytes.NewReader(data))
				}
			},
			want: data, firstRange: "bytes=100000-", resumedBytes: int64(len(data) - n),
		},
		{
			name: "file changed: If-Range gives 200", part: data[:n], st: ResumeState{Size: int64(len(data)), ETag: `"v1"`},
			handler: func(s *served) http.HandlerFunc { return serveContent(s, `"v2"`, func() []byte { return newData }) },
			want:    newData, restarts: 1, firstRange: "bytes=100000-", resumedBytes: int64(len(newData)),
		},
		{
			name: "server ignores Range: 200", part: bytes.Repeat([]byte{'x'}, n), st: ResumeState{Size: int64(len(data)), ETag: `"v1"`},
			handler: func(s *served) http.HandlerFunc {
				return func(w http.ResponseWriter, r *http.Request) {
					i := s.record(r)
					w.Header().Set("ETag", `"v1"`)
					w.Header().Set("Content-Length", fmt.Sprint(len(data)))
					countingWriter{w, s, i}.Write(data)
				}
			},
			want: data, restarts: 1, firstRange: "bytes=100000-", resumedBytes: int64(len(data)),
		},
		{
			name: "416: already complete", part: data, st: ResumeState{Size: int64(len(data)), ETag: `"v1"`},
			handler: func(s *served) http.HandlerFunc { return serveContent(s, `"v1"`, func() []byte { return data }) },
			want:    data, firstRange: "bytes=300000-", resumedBytes: 0,
		},
		{
			name: "416: file shrank", part: data[:n], st: ResumeState{Size: int64(len(data)), ETag: `"v1"`},
			handler: func(s *served) http.HandlerFunc {
				// ServeContent with If-Range matching and a range past the end.
				return serveContent(s, `"v1"`, func() []byte { return newData[:50_000] })
			},
			want: newData[:50_000], restarts: 1, firstRange: "bytes=100000-",
		},
		{
			name: "Content-Range starts elsewhere", part: data[:n], st: ResumeState{Size: int64(len(data)), ETag: `"v1"`},
			handler: lyingRange(data, func(w http.ResponseWriter) {
				w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", n+10, len(data)-1, len(data)))
			}),
			want: data, restarts: 1, firstRange: "bytes=100000-",
		},
		{
			name: "Content-Range names another total", part: data[:n], st: ResumeState{Size: int64(len(data)), ETag: `"v1"`},
			handler: lyingRange(data, func(w http.ResponseWriter) {
				w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", n, len(data)+99, len(data)+100))
			}),
			want: data, restarts: 1, firstRange: "bytes=100000-",
		},
		{
			name: "Content-Range unreadable", part: data[:n], st: ResumeState{Size: int64(len(data)), ETag: `"v1"`},
			handler: lyingRange(data, func(w http.ResponseWriter) {
				w.Header().Set("Content-Range", "bytes garbage")
			}),
			want: data, restarts: 1, firstRange: "bytes=100000-",
		},
		{
			name: "206 with a changed ETag", part: data[:n], st: ResumeState{Size: int64(len(data)), ETag: `"v1"`},
			handler: lyingRange(data, func(w http.ResponseWriter) {
				w.Header().Set("ETag", `"v9"`)
				w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", n, len(data)-1, len(data)))
			}),
			want: data, restarts: 1, firstRange: "bytes=100000-",
		},
		{
			name: "206 without the ETag sent in If-Range", part: data[:n], st: ResumeState{Size: int64(len(data)), ETag: `"v1"`},
			handler: lyingRange(data, func(w http.ResponseWriter) {
				w.Header().Del("ETag")
				w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", n, len(data)-1, len(data)))
			}),
			want: data, restarts: 1, firstRange: "bytes=100000-",
		},
		{
			name: "206 without the Last-Modified sent in If-Range", part: data[:n],
			st: ResumeState{Size: int64(len(data)), LastModified: time.Unix(1700000000, 0).UTC().Format(http.TimeFormat)},
			handler: lyingRange(data, func(w http.ResponseWriter) {
				w.Header().Del("ETag")
				w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", n, len(data)-1, len(data)))
			}),
			want: data, restarts: 1, firstRange: "bytes=100000-",
		},
		{
			name: "no validator kept: start over without asking", part: data[:n], st: ResumeState{Size: int64(len(data))},
			handler: func(s *served) http.HandlerFunc { return serveContent(s, `"v1"`, func() []byte { return data }) },
			want:    data, restarts: 1, firstRange: "",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var s served
			srv := httptest.NewServer(tc.handler(&s))
			defer srv.Close()
			store := newStore(t)
			out := filepath.Join(t.TempDir(), "f.bin")
			u := srv.URL + "/f.bin"
			seed(t, store, u, out, tc.part, tc.st)
			var restarts []string
			res, err := Download(context.Background(), u, DownloadOptions{Path: out, Store: store, Pipeline: fastPipeline,
				SHA256: sha(tc.want), OnEvent: func(ev Event) {
					if ev.Type == EventRestart {
						restarts = append(restarts, ev.Reason)
					}
				}})
			if err != nil {
				t.Fatal(err)
			}
			checkFile(t, out, tc.want)
			srv.Close() // waits for the handlers, so their counts are final
			if res.Restarts != tc.restarts || len(restarts) != tc.restarts {
				t.Fatalf("restarts: result %d, events %q; want %d", res.Restarts, restarts, tc.restarts)
			}
			if s.ranges[0] != tc.firstRange {
				t.Fatalf("first Range %q, want %q", s.ranges[0], tc.firstRange)
			}
			if tc.firstRange != "" && s.ifr[0] != tc.st.ETag && s.ifr[0] != tc.st.LastModified {
				t.Fatalf("If-Range %q", s.ifr[0])
			}
			if tc.resumedBytes > 0 && s.bytes[0] != tc.resumedBytes {
				t.Fatalf("first request served %d bytes, want %d", s.bytes[0], tc.resumedBytes)
			}
		})
	}
}

// lyingRange answers a Range request with a 206 whose headers set() spoils,
// and a plain request with the whole file.
func lyingRange(data []byte, set func(http.ResponseWriter)) func(s *served) http.HandlerFunc {
	return func(s *served) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			i := s.record(r)
			w.Header().Set("ETag", `"v1"`)
			if r.Header.Get("Range") == "" {
				w.Header().Set("Content-Length", fmt.Sprint(len(data)))
				countingWriter{w, s, i}.Write(data)
				return
			}
			set(w)
			w.WriteHeader(http.StatusPartialContent)
			countingWriter{w, s, i}.Write(data[100_000:])
		}
	}
}

// A server that always lies gets a bounded number of restarts, then an error.
func TestDownloadGivesUpOnLiar(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Range", "bytes 5-9/10")
		w.WriteHeader(http.StatusPartialContent)
		w.Write([]byte("abcde"))
	}))
	defer srv.Close()
	out := filepath.Join(t.TempDir(), "f")
	_, err := Download(context.Background(), srv.URL, DownloadOptions{Path: out, Store: newStore(t), Pipeline: fastPipeline})
	if err == nil || !strings.Contains(err.Error(), "restarts") {
		t.Fatalf("err = %v", err)
	}
}

// A server that cuts every full answer at the same point and answers every
// resume with a range from 0 sends the same prefix again and again: that is
// not progress, so the restarts run out instead of looping for ever. (The
// server turns honest after 60 requests so that a looping client ends the
// test with a success rather than a hang.)
func TestDownloadGivesUpOnCutThenLie(t *testing.T) {
	data := testData(200_000, 9)
	var s served
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := s.record(r)
		w.Header().Set("ETag", `"v1"`)
		if i >= 60 {
			http.ServeContent(w, r, "f", time.Time{}, bytes.NewReader(data))
			return
		}
		if r.Header.Get("Range") != "" {
			w.Header().Set("Content-Range", fmt.Sprintf("bytes 0-%d/%d", len(data)-1, len(data)))
			w.WriteHeader(http.StatusPartialContent)
			w.Write(data)
			return
		}
		w.Header().Set("Content-Length", fmt.Sprint(len(data)))
		w.Write(data[:50_000])
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler) // cut the body short
	}))
	defer srv.Close()
	out := filepath.Join(t.TempDir(), "f")
	_, err := Download(context.Background(), srv.URL, DownloadOptions{Path: out, Store: newStore(t), Pipeline: fastPipeline})
	if err == nil || !strings.Contains(err.Error(), "restarts") {
		s.mu.Lock()
		defer s.mu.Unlock()
		t.Fatalf("err = %v after %d requests, want a give-up on restarts", err, len(s.ranges))
	}
}

// Stopping a download mid-body (Ctrl-C: a context cancelled with a cause
// such as "interrupt signal received") ends it with the context's error; it
// is neither reported as a lost connection nor followed by another attempt.
func TestDownloadInterruptedMidBody(t *testing.T) {
	data := testData(200_000, 10)
	var s served
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.record(r)
		w.Header().Set("Content-Length", fmt.Sprint(len(data))) // no validator: a retry would start over
		w.Write(data[:50_000])
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	defer srv.Close()
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	var after []Event
	out := filepath.Join(t.TempDir(), "f")
	_, err := Download(ctx, srv.URL, DownloadOptions{Path: out, Store: newStore(t), Pipeline: fastPipeline,
		OnEvent: func(ev Event) {
			if ctx.Err() != nil {
				after = append(after, ev)
			}
			if ev.Type == EventProgress {
				cancel(errors.New("interrupt signal received"))
			}
		}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	for _, ev := range after {
		if ev.Type == EventRetry || ev.Type == EventRestart {
			t.Errorf("after the interrupt: %v event (%v %s)", ev.Type, ev.Err, ev.Reason)
		}
	}
	srv.Close()
	if len(s.ranges) != 1 {
		t.Errorf("%d requests, want 1", len(s.ranges))
	}
}

func TestDownloadChecksums(t *testing.T) {
	data := testData(70_000, 4)
	sum := sha256.Sum256(data)
	good := "sha-256=:" + base64.StdEncoding.EncodeToString(sum[:]) + ":"
	bad := "sha-256=:" + base64.StdEncoding.EncodeToString(make([]byte, 32)) + ":"
	for _, tc := range []struct {
		name, repr, want string
		wantErr          bool
	}{
		{"repr-digest ok", good, "", false},
		{"repr-digest wrong", bad, "", true},
		{"sha256 wrong", "", strings.Repeat("ab", 32), true},
		{"both ok", good, sha(data), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tc.repr != "" {
					w.Header().Set("Repr-Digest", tc.repr)
				}
				http.ServeContent(w, r, "f", time.Time{}, bytes.NewReader(data))
			}))
			defer srv.Close()
			store := newStore(t)
			out := filepath.Join(t.TempDir(), "f")
			res, err := Download(context.Background(), srv.URL, DownloadOptions{Path: out, Store: store, SHA256: tc.want})
			if tc.wantErr {
				var ce *ChecksumError
				if !errors.As(err, &ce) {
					t.Fatalf("err = %v, want a ChecksumError", err)
				}
				for _, p := range []string{out, out + ".part"} {
					if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
						t.Fatalf("%s exists after a mismatch", p)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			checkFile(t, out, data)
			if !strings.Contains(res.Verified, "repr-digest") {
				t.Fatalf("verified %q", res.Verified)
			}
		})
	}
}

// Content-MD5 is checked when one 200 carried the whole file.
func TestDownloadContentMD5(t *testing.T) {
	data := testData(50_000, 7)
	for _, tc := range []struct {
		name    string
		sum     []byte
		wantErr bool
	}{{"ok", nil, false}, {"wrong", make([]byte, 16), true}} {
		t.Run(tc.name, func(t *testing.T) {
			sum := tc.sum
			if sum == nil {
				s := md5.Sum(data)
				sum = s[:]
			}
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-MD5", base64.StdEncoding.EncodeToString(sum))
				w.Write(data)
			}))
			defer srv.Close()
			out := filepath.Join(t.TempDir(), "f")
			res, err := Download(context.Background(), srv.URL, DownloadOptions{Path: out, Store: newStore(t)})
			var ce *ChecksumError
			if tc.wantErr {
				if !errors.As(err, &ce) || ce.Algorithm != "md5" {
					t.Fatalf("err = %v", err)
				}
				return
			}
			if err != nil || res.Verified != "content-md5" {
				t.Fatalf("%+v %v", res, err)
			}
			checkFile(t, out, data)
		})
	}
}

// A body that stops sending is cut after StallTimeout (on a fake clock) and
// the download resumes where it stopped.
func TestDownloadStallResumes(t *testing.T) {
	data := testData(200_000, 5)
	clock := reboundtest.NewClock(time.Unix(0, 0))
	blocked := make(chan struct{})
	var s served
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := s.record(r)
		w.Header().Set("ETag", `"v1"`)
		if i == 0 {
			w.Header().Set("Content-Length", fmt.Sprint(len(data)))
			countingWriter{w, &s, i}.Write(data[:50_000])
			w.(http.Flusher).Flush()
			close(blocked)
			<-r.Context().Done() // hang until the client gives up
			return
		}
		http.ServeContent(countingWriter{w, &s, i}, r, "f", time.Time{}, bytes.NewReader(data))
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	retried := make(chan struct{})
	go func() {
		<-blocked
		advanceUntil(ctx, clock, DefaultStallTimeout, retried)
	}()
	out := filepath.Join(t.TempDir(), "f")
	var retries []Event
	res, err := Download(ctx, srv.URL, DownloadOptions{Path: out, Store: newStore(t), Clock: clock, Pipeline: fastPipeline,
		OnEvent: func(ev Event) {
			if ev.Type == EventRetry {
				if len(retries) == 0 {
					close(retried)
				}
				retries = append(retries, ev)
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, out, data)
	srv.Close() // waits for the handlers, so their counts are final
	if len(retries) != 1 || !errors.Is(retries[0].Err, ErrStalled) {
		t.Fatalf("retry events %+v, want one ErrStalled", retries)
	}
	if len(s.ranges) != 2 || s.ranges[1] != fmt.Sprintf("bytes=%d-", retries[0].Done) {
		t.Fatalf("ranges %q after a stall at %d", s.ranges, retries[0].Done)
	}
	if s.bytes[1] != int64(len(data))-retries[0].Done {
		t.Fatalf("resume served %d bytes, want %d", s.bytes[1], int64(len(data))-retries[0].Done)
	}
	_ = res
}

// A name from Content-Disposition or the URL never leaves the directory.
func TestDownloadNameStaysInDir(t *testing.T) {
	data := []byte("secret")
	for _, tc := range []struct{ disp, path, want string }{
		{`attachment; filename="../../etc/passwd"`, "/x", "passwd"},
		{`attachment; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf`, "/x", "résumé.pdf"},
		{"", "/dir/%2e%2e%2fescape.txt", "escape.txt"},
		{"", "/", "download"},
		{`attachment; filename=".."`, "/..", "download"},
		{`attachment; filename="` + strings.Repeat("x", 300) + `"`, "/x", strings.Repeat("x", maxNameBytes)},
	} {
		t.Run(tc.want[:min(len(tc.want), 20)], func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tc.disp != "" {
					w.Header().Set("Content-Disposition", tc.disp)
				}
				w.Header().Set("ETag", `"e"`)
				w.Write(data)
			}))
			defer srv.Close()
			root := t.TempDir()
			dir := filepath.Join(root, "in")
			os.Mkdir(dir, 0o755)
			res, err := Download(context.Background(), srv.URL+tc.path, DownloadOptions{Dir: dir, Store: newStore(t)})
			if err != nil {
				t.Fatal(err)
			}
			if res.Path != filepath.Join(dir, tc.want) {
				t.Fatalf("saved to %s, want %s", res.Path, filepath.Join(dir, tc.want))
			}
			checkFile(t, res.Path, data)
			entries, _ := os.ReadDir(root)
			if len(entries) != 1 {
				t.Fatalf("something was written beside the target dir: %v", entries)
			}
		})
	}
}

// A name the server chose never replaces a file that is already there; a
// path the caller gave does, once the download is complete.
func TestDownloadKeepsExistingFileServerNamed(t *testing.T) {
	data := []byte("from the server")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Disposition", `attachment; filename=".bashrc"`)
		w.Header().Set("ETag", `"e"`)
		w.Write(data)
	}))
	defer srv.Close()
	dir := t.TempDir()
	mine := filepath.Join(dir, "bashrc")
	if err := os.WriteFile(mine, []byte("the user's own"), 0o600); err != nil {
		t.Fatal(err)
	}
	store := newStore(t)
	for range 2 { // and again: nothing was saved that would let a rerun go on
		_, err := Download(context.Background(), srv.URL+"/x", DownloadOptions{Dir: dir, Store: store})
		if !errors.Is(err, ErrInvalid) || !errors.Is(err, ErrFileExists) || !strings.Contains(err.Error(), mine) ||
			!strings.Contains(err.Error(), "DownloadOptions.Path") || strings.Contains(err.Error(), "-o") {
			t.Fatalf("err = %v, want ErrInvalid and ErrFileExists naming %s and DownloadOptions.Path (no CLI flag)", err, mine)
		}
		checkFile(t, mine, []byte("the user's own"))
		if entries, _ := os.ReadDir(dir); len(entries) != 1 {
			t.Fatalf("files written beside it: %v", entries)
		}
	}
	res, err := Download(context.Background(), srv.URL+"/x", DownloadOptions{Path: mine, Store: store})
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, res.Path, data)
}

// A signed URL's query never shows in an error (CI logs keep stderr).
func TestDownloadErrorHidesQuery(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent) // an answer a download cannot use
	}))
	defer srv.Close()
	_, err := Download(context.Background(), srv.URL+"/f.bin?X-Sig=s3cr3tSIGNATURE", DownloadOptions{Dir: t.TempDir(), Store: newStore(t)})
	if err == nil || strings.Contains(err.Error(), "s3cr3tSIGNATURE") || !strings.Contains(err.Error(), "/f.bin") {
		t.Fatalf("err = %v, want an error naming /f.bin without the query", err)
	}
}

func TestSafeFileName(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"report.pdf", "report.pdf"},
		{"../../etc/passwd", "passwd"},
		{"/abs", "abs"},
		{"/", ""},
		{"a/b", "b"},
		{`a\b`, "b"},
		{`..\..\win.ini`, "win.ini"},
		{"..", ""},
		{".", ""},
		{"", ""},
		{"   ", ""},
		{".bashrc", "bashrc"},
		{"...hidden", "hidden"},
		{". .bash_profile", "bash_profile"}, // dots and spaces in turn
		{" . . .ssh", "ssh"},
		{"a\u2028b", "ab"}, // a line separator is no part of a name
		{"résumé 2024.pdf", "résumé 2024.pdf"},
		{"日本語.txt", "日本語.txt"},
		{"bell\x07\x00name\n.txt", "bellname.txt"},
		{"rtl\u202etxt.exe", "rtltxt.exe"},
		{"bad\xffutf8", "badutf8"},
		{strings.Repeat("é", 200), strings.Repeat("é", 122)}, // 244 bytes: room for ".part.lock"
	} {
		got := SafeFileName(tc.in)
		if got != tc.want {
			t.Errorf("SafeFileName(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if got != "" && (!filepath.IsLocal(got) || strings.ContainsAny(got, `/\`) || len(got+".part.lock") > 255) {
			t.Errorf("SafeFileName(%q) = %q is not a safe local name", tc.in, got)
		}
	}
}

func TestCorruptState(t *testing.T) {
	data := testData(1000, 6)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "f", time.Time{}, bytes.NewReader(data))
	}))
	defer srv.Close()
	store := newStore(t)
	out := filepath.Join(t.TempDir(), "f")
	key := "get " + srv.URL + " -> " + out
	for _, garbage := range []string{"{not json", `{"offset": 5, "size": 2}`, `{"offset": 1} {}`, `{"bogus": 1}`} {
		if err := os.WriteFile(store.Path(key), []byte(garbage), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := Download(context.Background(), srv.URL, DownloadOptions{Path: out, Store: store})
		var ce *CorruptStateError
		if !errors.As(err, &ce) || ce.Path != store.Path(key) || !strings.Contains(err.Error(), store.Path(key)) {
			t.Fatalf("%q: err = %v, want a CorruptStateError naming %s", garbage, err, store.Path(key))
		}
	}
	if _, err := Download(context.Background(), srv.URL, DownloadOptions{Path: out, Store: store, StartOver: true}); err != nil {
		t.Fatal(err)
	}
	checkFile(t, out, data)
}

func TestFileStateStore(t *testing.T) {
	store := newStore(t)
	ctx := context.Background()
	if _, ok, err := store.Load(ctx, "k"); ok || err != nil {
		t.Fatalf("empty store: ok=%v err=%v", ok, err)
	}
	want := ResumeState{URL: "http://x/", Offset: 5, Size: 10, ETag: `"e"`, UploadURL: "http://x/u", Fingerprint: "fp"}
	if err := store.Save(ctx, "k", want); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(store.Path("k"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("state file mode %v, err %v", fi.Mode(), err)
	}
	got, ok, err := store.Load(ctx, "k")
	if !ok || err != nil || got != want {
		t.Fatalf("Load = %+v %v %v", got, ok, err)
	}
	if store.Path("k") == store.Path("k2") || store.Path("a/b") == store.Path("a_b") {
		t.Fatal("different keys share a file")
	}
	if err := store.Delete(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if err := store.Delete(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(store.dir); len(entries) != 0 {
		t.Fatalf("files left: %v", entries)
	}
}

func TestDownloadInvalidInput(t *testing.T) {
	for _, tc := range []struct{ url, sum string }{{"ftp://x/y", ""}, {"http://", ""}, {"http://h/", "abc"}} {
		_, err := Download(context.Background(), tc.url, DownloadOptions{Dir: t.TempDir(), Store: newStore(t), SHA256: tc.sum})
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("%q %q: err = %v, want ErrInvalid", tc.url, tc.sum, err)
		}
	}
}

// A 404 is permanent: one attempt, a RetryError naming the status.
func TestDownloadPermanentStatus(t *testing.T) {
	var calls int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls++
		http.NotFound(w, r)
	}))
	defer srv.Close()
	_, err := Download(context.Background(), srv.URL, DownloadOptions{Path: filepath.Join(t.TempDir(), "f"), Store: newStore(t), Pipeline: fastPipeline})
	var se *reboundhttp.StatusError
	if !errors.As(err, &se) || se.StatusCode != 404 || calls != 1 {
		t.Fatalf("err = %v after %d calls", err, calls)
	}
}

// An empty file, and a body of unknown length (chunked, no Content-Length)
// cut half-way and resumed, both complete.
func TestDownloadEmptyAndUnknownLength(t *testing.T) {
	empty := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", `"e"`)
		w.Header().Set("Content-Length", "0")
	}))
	defer empty.Close()
	out := filepath.Join(t.TempDir(), "empty")
	if res, err := Download(context.Background(), empty.URL, DownloadOptions{Path: out, Store: newStore(t)}); err != nil || res.Size != 0 {
		t.Fatalf("empty: %+v %v", res, err)
	}
	checkFile(t, out, nil)

	data := testData(100_000, 30)
	var s served
	chunked := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := s.record(r)
		w.Header().Set("ETag", `"c"`)
		if i == 0 {
			// No Content-Length: chunked. Send half, then break the connection.
			countingWriter{w, &s, i}.Write(data[:50_000])
			w.(http.Flusher).Flush()
			conn, _, _ := http.NewResponseController(w).Hijack()
			conn.Close()
			return
		}
		var start int
		fmt.Sscanf(r.Header.Get("Range"), "bytes=%d-", &start)
		if start >= len(data) {
			w.WriteHeader(http.StatusRequestedRangeNotSatisfiable) // no more: the end, confirmed
			return
		}
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/*", start, len(data)-1))
		w.WriteHeader(http.StatusPartialContent)
		w.(http.Flusher).Flush() // chunked again: the length stays unknown
		countingWriter{w, &s, i}.Write(data[start:])
	}))
	defer chunked.Close()
	out = filepath.Join(t.TempDir(), "chunked")
	res, err := Download(context.Background(), chunked.URL, DownloadOptions{Path: out, Store: newStore(t), Pipeline: fastPipeline})
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, out, data)
	chunked.Close()
	if fmt.Sprint(s.ranges) != "[ bytes=50000- bytes=100000-]" || res.Restarts != 0 {
		t.Fatalf("ranges %q, result %+v", s.ranges, res)
	}
}

// A total nobody gave: after a chunked answer cut mid-body, a resume
// answered "206 bytes 100000-100099/*" is not the end of the file (it was
// taken for it: exit 0 with a short file). The client asks again from each
// new offset until the server says there is no more (416).
func TestDownloadUnknownSizeAsksUntilTheEnd(t *testing.T) {
	data := testData(300_000, 31)
	var s served
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := s.record(r)
		w.Header().Set("ETag", `"u"`)
		var start int
		if _, err := fmt.Sscanf(r.Header.Get("Range"), "bytes=%d-", &start); err != nil {
			countingWriter{w, &s, i}.Write(data[:100_000])
			w.(http.Flusher).Flush() // chunked: no length
			conn, _, _ := http.NewResponseController(w).Hijack()
			conn.Close()
			return
		}
		if start >= len(data) {
			w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
			return
		}
		end := min(start+100, len(data)) // a little at a time, total unknown
		if i > 1 {
			end = len(data)
		}
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/*", start, end-1))
		w.Header().Set("Content-Length", fmt.Sprint(end-start))
		w.WriteHeader(http.StatusPartialContent)
		countingWriter{w, &s, i}.Write(data[start:end])
	}))
	defer srv.Close()
	out := filepath.Join(t.TempDir(), "f.bin")
	res, err := Download(context.Background(), srv.URL, DownloadOptions{Path: out, Store: newStore(t), Pipeline: fastPipeline})
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, out, data)
	if want := "[ bytes=100000- bytes=100100- bytes=300000-]"; fmt.Sprint(s.ranges) != want || res.Size != int64(len(data)) {
		t.Fatalf("ranges %q, want %s; result %+v", s.ranges, want, res)
	}
}

// A body with no length and no framing (HTTP/1.1, closed at the end) ends
// the same way whether the file ended or the connection was cut: the client
// asks for the rest, and a server that then ignores the range makes the
// download fail, never succeed on a size nobody confirmed.
func TestDownloadUnframedEndUnconfirmed(t *testing.T) {
	data := testData(50_000, 32)
	for _, etag := range []string{`"n"`, ""} {
		var requests int
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			requests++
			conn, buf, err := http.NewResponseController(w).Hijack()
			if err != nil {
				t.Error(err)
				return
			}
			defer conn.Close()
			buf.WriteString("HTTP/1.1 200 OK\r\nConnection: close\r\n")
			if etag != "" {
				buf.WriteString("ETag: " + etag + "\r\n")
			}
			buf.WriteString("\r\n")
			buf.Write(data[:30_000]) // cut: the client cannot tell
			buf.Flush()
		}))
		out := filepath.Join(t.TempDir(), "f.bin")
		_, err := Download(context.Background(), srv.URL, DownloadOptions{Path: out, Store: newStore(t), Pipeline: fastPipeline})
		srv.Close()
		if err == nil || !strings.Contains(err.Error(), "cannot be told") {
			t.Fatalf("ETag %q: err = %v, want a failure saying the end cannot be confirmed", etag, err)
		}
		if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("ETag %q: a file was saved: %v", etag, err)
		}
		// With a validator, one range request could have confirmed the end.
		if want := map[string]int{`"n"`: 2, "": 1}[etag]; requests != want {
			t.Fatalf("ETag %q: %d requests, want %d", etag, requests, want)
		}
	}
}

// A retry event of a resumed download says how much is safe, not 0.
func TestDownloadRetryEventsCarryOffset(t *testing.T) {
	data := testData(200_000, 34)
	var s served
	failed := false
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !failed {
			failed = true
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		serveContent(&s, `"v1"`, func() []byte { return data })(w, r)
	}))
	defer srv.Close()
	store := newStore(t)
	out := filepath.Join(t.TempDir(), "f.bin")
	seed(t, store, srv.URL, out, data[:50_000], ResumeState{Size: int64(len(data)), ETag: `"v1"`})
	var retries []int64
	_, err := Download(context.Background(), srv.URL, DownloadOptions{Path: out, Store: store, Pipeline: fastPipeline,
		OnEvent: func(ev Event) {
			if ev.Type == EventRetry {
				retries = append(retries, ev.Done)
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, out, data)
	if fmt.Sprint(retries) != "[50000]" {
		t.Fatalf("retry events' Done = %v, want [50000]", retries)
	}
}

// A server that answers every request with the same short 206 ".../*" and no
// validator gives the download nothing to resume against and no end: it
// must run out of restarts, not start over for ever.
func TestDownloadGivesUpOnEndlessPartsWithoutValidator(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if requests.Add(1) > 100 {
			cancel() // the bound the client failed to keep
		}
		w.Header().Set("Content-Range", "bytes 0-99/*")
		w.WriteHeader(http.StatusPartialContent)
		w.Write(make([]byte, 100))
	}))
	defer srv.Close()
	out := filepath.Join(t.TempDir(), "f.bin")
	_, err := Download(ctx, srv.URL, DownloadOptions{Path: out, Store: newStore(t), Pipeline: fastPipeline})
	if err == nil || ctx.Err() != nil {
		t.Fatalf("err = %v after %d requests; want a bounded give-up", err, requests.Load())
	}
}

// A download interrupted half-way keeps its state, and the state holds no
// part of the URL's query (a token, a signature) nor its userinfo; the same
// URL still resumes from it.
func TestDownloadStateHoldsNoQuerySecret(t *testing.T) {
	data := testData(200_000, 11)
	var s served
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.record(r)
		if calls.Add(1) == 1 {
			w.Header().Set("ETag", `"v1"`)
			w.Header().Set("Content-Length", fmt.Sprint(len(data)))
			w.Write(data[:50_000])
			w.(http.Flusher).Flush()
			<-r.Context().Done()
			return
		}
		http.ServeContent(w, r, "f", time.Time{}, bytes.NewReader(data))
	}))
	defer srv.Close()
	u := strings.Replace(srv.URL, "http://", "http://alice:PASSWORDSECRET@", 1) + "/f.bin?token=QUERYSECRET"
	storeDir := t.TempDir()
	store, err := NewFileStateStore(storeDir)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "f")
	ctx, cancel := context.WithCancel(context.Background())
	_, err = Download(ctx, u, DownloadOptions{Path: out, Store: store, Pipeline: fastPipeline,
		OnEvent: func(ev Event) {
			if ev.Type == EventProgress {
				cancel()
			}
		}})
	cancel()
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("first download: %v, want it interrupted", err)
	}
	files, err := os.ReadDir(storeDir)
	if err != nil || len(files) == 0 {
		t.Fatalf("no state saved (%v)", err)
	}
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(storeDir, f.Name()))
		if err != nil {
			t.Fatal(err)
		}
		for _, secret := range []string{"QUERYSECRET", "PASSWORDSECRET", "alice"} {
			if strings.Contains(f.Name(), secret) || bytes.Contains(b, []byte(secret)) {
				t.Fatalf("state %s holds %s: %s", f.Name(), secret, b)
			}
		}
	}
	res, err := Download(context.Background(), u, DownloadOptions{Path: out, Store: store, Pipeline: fastPipeline})
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, out, data)
	if !res.Resumed {
		t.Fatalf("the same URL did not resume: %+v, ranges %q", res, s.ranges)
	}
}
