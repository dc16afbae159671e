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
	"sync"
	"testing"

	"github.com/rebound-go/rebound"
)

// scriptedServer answers each download request as the next three bytes of a
// script say (op, p1, p2), then honestly once the script is spent. It holds
// two versions of the file, each with its own validator (an ETag, or a
// Last-Modified date when lastModified is set), and may switch between
// them. It lies in every header (Content-Range start, end and total, status,
// ETag present or not, Content-Length), cuts bodies short and fails, but a
// body always holds the bytes its headers claim of the current version, and
// a 416 never names a false total equal to the offset asked: a file changed
// under the same ETag, or a "bytes */N" confirming a false end, are lies no
// client can detect.
type scriptedServer struct {
	mu           sync.Mutex
	script       []byte
	version      int
	files        [2][]byte
	lastModified bool
}

// validatorHeader is the header that carries the server's validator.
func (s *scriptedServer) validatorHeader() string {
	if s.lastModified {
		return "Last-Modified"
	}
	return "ETag"
}

var (
	etags = [2]string{`"a"`, `"b"`}
	dates = [2]string{"Tue, 14 Nov 2023 22:13:20 GMT", "Wed, 15 Nov 2023 22:13:20 GMT"}
)

func (s *scriptedServer) next() (op, p1, p2 byte) {
	if len(s.script) < 3 {
		return 0, 0, 0
	}
	op, p1, p2 = s.script[0], s.script[1], s.script[2]
	s.script = s.script[3:]
	return op % 11, p1, p2
}

func (s *scriptedServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	op, p1, p2 := s.next()
	if op == 1 {
		s.version ^= 1
	}
	data, etag := s.files[s.version], etags[s.version]
	if s.lastModified {
		etag = dates[s.version]
	}
	vh := s.validatorHeader()
	s.mu.Unlock()

	asked := -1
	if rg := r.Header.Get("Range"); rg != "" {
		fmt.Sscanf(rg, "bytes=%d-", &asked)
	}
	h := w.Header()
	full := func() {
		h.Set(vh, etag)
		h.Set("Content-Length", fmt.Sprint(len(data)))
		w.Write(data)
	}
	partial := func(start, end int, total string, withETag, withLength bool, cutAt int) {
		if withETag {
			h.Set(vh, etag)
		}
		h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%s", start, end, total))
		if withLength {
			h.Set("Content-Length", fmt.Sprint(end-start+1))
		}
		w.WriteHeader(http.StatusPartialContent)
		body := data[start : end+1]
		if cutAt >= 0 && cutAt < len(body) {
			w.Write(body[:cutAt])
			w.(http.Flusher).Flush()
			if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
				conn.Close()
			}
			return
		}
		w.Write(body)
	}
	honest := func() {
		if asked < 0 || r.Header.Get("If-Range") != etag {
			full()
			return
		}
		if asked >= len(data) {
			h.Set("Content-Range", fmt.Sprintf("bytes */%d", len(data)))
			w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
			return
		}
		partial(asked, len(data)-1, fmt.Sprint(len(data)), true, true, -1)
	}
	start := max(asked, 0)
	switch op {
	case 0:
		honest()
	case 1: // the file changed: a server that ignores If-Range sends its new bytes, without a validator
		if start >= len(data) {
			honest()
			return
		}
		partial(start, len(data)-1, fmt.Sprint(len(data)), false, true, -1)
	case 2: // 200 with a length, cut
		h.Set(vh, etag)
		h.Set("Content-Length", fmt.Sprint(len(data)))
		w.Write(data[:min(int(p1)*10, len(data))])
		w.(http.Flusher).Flush()
		if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
			conn.Close()
		}
	case 3: // 200 chunked (no length), maybe cut
		h.Set(vh, etag)
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		if p2&1 == 0 {
			w.Write(data)
			return
		}
		w.Write(data[:min(int(p1)*10, len(data))])
		w.(http.Flusher).Flush()
		if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
			conn.Close()
		}
	case 4: // 206 from where asked, of the server's chosen length and total
		if start >= len(data) {
			honest()
			return
		}
		end := min(start+int(p1)*10, len(data)-1)
		total := fmt.Sprint(len(data))
		if p2&1 != 0 {
			total = "*"
		}
		partial(start, end, total, p2&2 == 0, p2&4 == 0, -1)
	case 5: // 206 that starts elsewhere than asked
		s := (start + int(p1) + 1) % len(data)
		partial(s, len(data)-1, fmt.Sprint(len(data)), p2&2 == 0, true, -1)
	case 6: // 416 with a Content-Range of some kind
		switch {
		case p2%3 == 1 && start >= len(data):
			// No Content-Range: true only at the end (before it, with no
			// total known, no client could tell this lie).
		case p2%3 == 2:
			n := len(data) + int(p1) + 1 // a wrong total, but not the offset asked
			if n == start {
				n++
			}
			h.Set("Content-Range", fmt.Sprintf("bytes */%d", n))
		default:
			h.Set("Content-Range", fmt.Sprintf("bytes */%d", len(data)))
		}
		if p2&4 == 0 {
			h.Set(vh, etag)
		}
		w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
	case 7:
		w.WriteHeader(http.StatusServiceUnavailable)
	case 8: // 206 naming another total
		if start >= len(data) {
			honest()
			return
		}
		partial(start, len(data)-1, fmt.Sprint(len(data)+int(p1)+1), true, true, -1)
	case 9: // 206 honest but cut
		if start >= len(data) {
			honest()
			return
		}
		total := fmt.Sprint(len(data))
		if p2&1 != 0 {
			total = "*"
		}
		partial(start, len(data)-1, total, true, true, int(p1)*10)
	case 10: // 206 without any validator, from where asked
		if start >= len(data) {
			honest()
			return
		}
		partial(start, len(data)-1, fmt.Sprint(len(data)), false, true, -1)
	}
}

// FuzzDownloadResume: a download resumed against any sequence of answers
// (statuses, Content-Range starts, ends and totals, validators (ETag or
// Last-Modified) present, absent or
// changed, lengths given or not, bodies cut, two versions of the file) either
// fails or saves exactly one version of the server's file: never a splice of
// two versions, a short file, or a wrong file reported as a success; and
// whatever the outcome, the lock beside the .part is gone once it returns
// (and the .part too after a success). Each
// run starts from a .part and a state of version 0 (prefix bytes), as an
// earlier run would have left them.
func FuzzDownloadResume(f *testing.F) {
	f.Add([]byte{}, uint16(0), uint8(0))
	f.Add([]byte{4, 10, 1, 4, 10, 1, 0, 0, 0}, uint16(0), uint8(0)) // 206 .../* twice, then honest
	f.Add([]byte{3, 50, 1, 4, 1, 1}, uint16(0), uint8(0))           // chunked cut, then a short 206 .../*
	f.Add([]byte{1, 0, 0}, uint16(500), uint8(5))                   // the file changes (same size): a 206 of it without validator
	f.Add([]byte{1, 0, 0, 4, 200, 0}, uint16(500), uint8(0))        // switch, then a 206 of the new version
	f.Add([]byte{6, 0, 1, 6, 0, 2, 9, 5, 1, 5, 3, 0}, uint16(2999), uint8(2))
	f.Add([]byte{1, 0, 0}, uint16(500), uint8(5|16)) // the same, with Last-Modified as the validator
	f.Add([]byte{4, 10, 1, 3, 50, 1, 0, 0, 0}, uint16(0), uint8(16))
	f.Fuzz(func(t *testing.T, script []byte, prefix uint16, lens uint8) {
		if len(script) > 60 {
			script = script[:60] // a bounded conversation
		}
		v0 := testData(1000+int(lens%4)*700, 40)
		v1 := testData(900+int(lens/4%4)*800, 41)
		useLM := lens&16 != 0
		srv := httptest.NewServer(&scriptedServer{script: bytes.Clone(script), files: [2][]byte{v0, v1}, lastModified: useLM})
		defer srv.Close()
		store, err := NewFileStateStore(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(t.TempDir(), "f.bin")
		if n := int(prefix) % (len(v0) + 1); n > 0 {
			st := ResumeState{Size: int64(len(v0)), ETag: etags[0]}
			if useLM {
				st = ResumeState{Size: int64(len(v0)), LastModified: dates[0]}
			}
			seed(t, store, srv.URL, out, v0[:n], st)
		}
		pipe := &rebound.Pipeline{Retry: rebound.Retry{Backoff: rebound.NoDelay, MaxAttempts: 3}}
		res, err := Download(context.Background(), srv.URL, DownloadOptions{Path: out, Store: store, Pipeline: pipe, Client: srv.Client()})
		if _, lerr := os.Lstat(out + ".part.lock"); !errors.Is(lerr, os.ErrNotExist) {
			t.Fatalf("the lock file outlived the download (err %v): %v", err, lerr)
		}
		if err != nil {
			if _, serr := os.Stat(out); !errors.Is(serr, os.ErrNotExist) {
				t.Fatalf("failed (%v) but saved a file", err)
			}
			return
		}
		got, rerr := os.ReadFile(out)
		if rerr != nil {
			t.Fatal(rerr)
		}
		if !bytes.Equal(got, v0) && !bytes.Equal(got, v1) {
			t.Fatalf("success with a file of %d bytes that is neither version (%d, %d bytes); result %+v", len(got), len(v0), len(v1), res)
		}
		if _, perr := os.Lstat(out + ".part"); !errors.Is(perr, os.ErrNotExist) {
			t.Fatalf("success left the .part behind: %v", perr)
		}
		if res.Size != int64(len(got)) {
			t.Fatalf("result says %d bytes, the file has %d", res.Size, len(got))
		}
	})
}
