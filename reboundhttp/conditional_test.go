package reboundhttp_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/rebound-go/rebound"
	"github.com/rebound-go/rebound/idempotency"
	"github.com/rebound-go/rebound/reboundhttp"
)

// etagStore is an HTTP resource store that implements ETags, If-Match and
// If-None-Match as RFC 9110 §13 says: every write makes a new version with
// a new strong ETag; a write whose precondition fails changes nothing and
// gets 412.
type etagStore struct {
	mu       sync.Mutex
	docs     map[string]doc
	version  int
	writes   atomic.Int64 // write requests received, applied or not
	etagMode string       // "" strong, "none" no ETag, "weak" W/"…"
	// afterWrite, if set, runs after a write was applied and before it is
	// answered; returning true drops the connection without an answer.
	afterWrite func(n int64) (drop bool)
}

type doc struct {
	body  []byte
	ctype string
	etag  string
}

func newETagServer(t *testing.T, s *etagStore) *httptest.Server {
	t.Helper()
	if s.docs == nil {
		s.docs = make(map[string]doc)
	}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return srv
}

func (s *etagStore) put(path, body string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.version++
	s.docs[path] = doc{[]byte(body), "application/json", `"v` + strconv.Itoa(s.version) + `"`}
}

func (s *etagStore) get(path string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.docs[path]
	return string(d.body), ok
}

func (s *etagStore) setETag(w http.ResponseWriter, etag string) {
	switch s.etagMode {
	case "none":
	case "weak":
		w.Header().Set("ETag", "W/"+etag)
	default:
		w.Header().Set("ETag", etag)
	}
}

// matches reports whether an If-Match / If-None-Match list names etag
// (strong comparison; "*" matches any existing resource).
func matches(list, etag string, exists bool) bool {
	for _, v := range strings.Split(list, ",") {
		v = strings.TrimSpace(v)
		if v == "*" && exists || exists && v == etag {
			return true
		}
	}
	return false
}

func (s *etagStore) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
		s.mu.Lock()
		d, ok := s.docs[r.URL.Path]
		s.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		s.setETag(w, d.etag)
		w.Header().Set("Content-Type", d.ctype)
		w.Write(d.body)
	case http.MethodPut:
		n := s.writes.Add(1)
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return
		}
		s.mu.Lock()
		d, exists := s.docs[r.URL.Path]
		im, hasIM := r.Header["If-Match"]
		inm, hasINM := r.Header["If-None-Match"]
		if hasIM && !matches(strings.Join(im, ","), d.etag, exists) ||
			hasINM && matches(strings.Join(inm, ","), d.etag, exists) {
			s.mu.Unlock()
			http.Error(w, "precondition failed", http.StatusPreconditionFailed)
			return
		}
		s.version++
		d = doc{body, r.Header.Get("Content-Type"), `"v` + strconv.Itoa(s.version) + `"`}
		s.docs[r.URL.Path] = d
		s.mu.Unlock()
		if s.afterWrite != nil && s.afterWrite(n) {
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				conn.Close() // applied, but the client never hears of it
			}
			return
		}
		s.setETag(w, d.etag)
		if exists {
			w.WriteHeader(http.StatusOK)
		} else {
			w.WriteHeader(http.StatusCreated)
		}
	default:
		w.WriteHeader(http.StatusMethodNotAllowed)
	}
}

func incrementCounter(cur []byte) ([]byte, error) {
	var v struct{ N int }
	if err := json.Unmarshal(cur, &v); err != nil {
		return nil, err
	}
	v.N++
	return json.Marshal(v)
}

func TestUpdate(t *testing.T) {
	s := &etagStore{}
	srv := newETagServer(t, s)
	s.put("/counter", `{"N":41}`)
	etag, err := reboundhttp.Update(context.Background(), client(t, fast()), srv.URL+"/counter", reboundhttp.UpdateOptions{}, incrementCounter)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := s.get("/counter"); got != `{"N":42}` || etag != `"v2"` {
		t.Fatalf("resource %s, etag %s", got, etag)
	}
	if s.docs["/counter"].ctype != "application/json" {
		t.Fatalf("Content-Type of the write %q, want the read's", s.docs["/counter"].ctype)
	}
}

// Another writer changes the resource between Update's GET and PUT: the
// PUT must be refused with 412, and the other writer's change survive.
func TestUpdateConcurrentWriterWins(t *testing.T) {
	s := &etagStore{}
	srv := newETagServer(t, s)
	s.put("/doc", `{"N":1}`)
	plain := &http.Client{Transport: &http.Transport{}}
	defer plain.CloseIdleConnections()
	other := func(cur []byte) ([]byte, error) {
		req, _ := http.NewRequest(http.MethodPut, srv.URL+"/doc", strings.NewReader(`{"N":100}`))
		resp, err := plain.Do(req) // an unconditional write by someone else
		if err != nil {
			return nil, err
		}
		resp.Body.Close()
		return incrementCounter(cur)
	}
	_, err := reboundhttp.Update(context.Background(), client(t, fast()), srv.URL+"/doc", reboundhttp.UpdateOptions{}, other)
	if !errors.Is(err, reboundhttp.ErrPreconditionFailed) {
		t.Fatalf("err %v, want ErrPreconditionFailed", err)
	}
	var se *reboundhttp.StatusError
	if !errors.As(err, &se) || se.StatusCode != 412 || rebound.Classify(err).Kind != rebound.KindPermanent {
		t.Fatalf("err %v: want a permanent *StatusError 412", err)
	}
	if got, _ := s.get("/doc"); got != `{"N":100}` {
		t.Fatalf("resource %s: the other writer's change was lost", got)
	}
	if n := s.writes.Load(); n != 2 {
		t.Fatalf("%d writes at the server, want 2 (the other's and our refused one, not retried)", n)
	}
}

// Many goroutines increment one counter, each redoing its Update after a
// 412: no increment is lost.
func TestUpdateNoLostUpdates(t *testing.T) {
	s := &etagStore{}
	srv := newETagServer(t, s)
	s.put("/counter", `{"N":0}`)
	c := client(t, fast())
	const workers, each = 8, 10
	var conflicts atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; {
				_, err := reboundhttp.Update(context.Background(), c, srv.URL+"/counter", reboundhttp.UpdateOptions{}, incrementCounter)
				switch {
				case errors.Is(err, reboundhttp.ErrPreconditionFailed):
					conflicts.Add(1) // read again and redo
				case err != nil:
					errs <- err
					return
				default:
					i++
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got, _ := s.get("/counter"); got != fmt.Sprintf(`{"N":%d}`, workers*each) {
		t.Fatalf("counter %s after %d increments (%d conflicts)", got, workers*each, conflicts.Load())
	}
	t.Logf("%d increments, %d conflicts redone", workers*each, conflicts.Load())
}

// The write is applied but its response lost; the client repeats the PUT,
// which meets its own change as a 412. The 412 may or may not be someone
// else's: Update says the outcome is unknown, and does NOT report a plain
// precondition failure that a redo loop would answer by applying the
// change a second time.
func TestUpdateLostResponseOutcomeUnknown(t *testing.T) {
	s := &etagStore{afterWrite: func(n int64) bool { return n == 1 }}
	srv := newETagServer(t, s)
	s.put("/counter", `{"N":1}`)
	_, err := reboundhttp.Update(context.Background(), client(t, fast()), srv.URL+"/counter", reboundhttp.UpdateOptions{}, incrementCounter)
	if !errors.Is(err, reboundhttp.ErrOutcomeUnknown) || errors.Is(err, reboundhttp.ErrPreconditionFailed) {
		t.Fatalf("err %v, want ErrOutcomeUnknown only", err)
	}
	var se *reboundhttp.StatusError
	if !errors.As(err, &se) || se.StatusCode != 412 || !strings.Contains(err.Error(), "sent 2 times") {
		t.Fatalf("err %v: want the 412 and the count", err)
	}
	if got, _ := s.get("/counter"); got != `{"N":2}` || s.writes.Load() != 2 {
		t.Fatalf("resource %s after %d writes; want N=2 (applied once), 2 writes", got, s.writes.Load())
	}
}

// The same lost response with a server that deduplicates by
// Idempotency-Key (our idempotency middleware, for PUT): the repeat gets
// the first answer replayed, and Update succeeds with the change applied
// once.
func TestUpdateLostResponseDeduplicated(t *testing.T) {
	s := &etagStore{docs: map[string]doc{}}
	s.put("/counter", `{"N":1}`)
	m, err := idempotency.New(idempotency.NewMemoryStore(), idempotency.Config{Methods: []string{http.MethodPut}})
	if err != nil {
		t.Fatal(err)
	}
	dedup := m.Handler(s)
	var puts atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPut || puts.Add(1) > 1 {
			dedup.ServeHTTP(w, r)
			return
		}
		// The server commits the first PUT, and its answer is lost on the way.
		dedup.ServeHTTP(httptest.NewRecorder(), r)
		if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
			conn.Close()
		}
	}))
	defer srv.Close()
	etag, err := reboundhttp.Update(context.Background(), client(t, fast()), srv.URL+"/counter", reboundhttp.UpdateOptions{}, incrementCounter)
	if err != nil {
		t.Fatalf("err %v, want success", err)
	}
	got, _ := s.get("/counter")
	if got != `{"N":2}` || s.writes.Load() != 1 || puts.Load() != 2 || etag != `"v2"` {
		t.Fatalf("resource %s, etag %s, %d PUTs sent, %d applied; want N=2 applied once out of 2, etag v2", got, etag, puts.Load(), s.writes.Load())
	}
}

func TestUpdateWithoutStrongETagWritesNothing(t *testing.T) {
	for _, mode := range []string{"none", "weak"} {
		t.Run(mode, func(t *testing.T) {
			s := &etagStore{etagMode: mode}
			srv := newETagServer(t, s)
			s.put("/doc", `{"N":1}`)
			called := false
			_, err := reboundhttp.Update(context.Background(), client(t, fast()), srv.URL+"/doc?token=secret", reboundhttp.UpdateOptions{},
				func(cur []byte) ([]byte, error) { called = true; return cur, nil })
			if !errors.Is(err, reboundhttp.ErrNoETag) || called || s.writes.Load() != 0 {
				t.Fatalf("err %v, modify called %v, %d writes; want ErrNoETag and nothing written", err, called, s.writes.Load())
			}
			if strings.Contains(err.Error(), "secret") {
				t.Fatalf("error shows the query: %v", err)
			}
		})
	}
}

func TestUpdateErrors(t *testing.T) {
	s := &etagStore{}
	srv := newETagServer(t, s)
	s.put("/doc", `{"N":1}`)
	c := client(t, fast())
	ctx := context.Background()

	_, err := reboundhttp.Update(ctx, c, srv.URL+"/missing", reboundhttp.UpdateOptions{}, incrementCounter)
	var se *reboundhttp.StatusError
	if !errors.As(err, &se) || se.StatusCode != 404 {
		t.Errorf("missing resource: %v, want a StatusError 404", err)
	}

	boom := errors.New("boom")
	_, err = reboundhttp.Update(ctx, c, srv.URL+"/doc", reboundhttp.UpdateOptions{}, func([]byte) ([]byte, error) { return nil, boom })
	if err != boom || s.writes.Load() != 0 {
		t.Errorf("modify failing: %v with %d writes; want its error and no write", err, s.writes.Load())
	}

	_, err = reboundhttp.Update(ctx, c, srv.URL+"/doc", reboundhttp.UpdateOptions{MaxBody: 3}, incrementCounter)
	if err == nil || !strings.Contains(err.Error(), "larger than 3 bytes") || s.writes.Load() != 0 {
		t.Errorf("too large: %v, want a clear error and no write", err)
	}

	_, err = reboundhttp.Update(ctx, c, srv.URL+"/doc", reboundhttp.UpdateOptions{Method: "POST"}, incrementCounter)
	if err == nil || !strings.Contains(err.Error(), "neither PUT nor PATCH") {
		t.Errorf("POST: %v, want refused", err)
	}
	if _, err = reboundhttp.Update(ctx, c, srv.URL+"/doc", reboundhttp.UpdateOptions{}, nil); err == nil {
		t.Error("nil modify: no error")
	}
	if _, err = reboundhttp.Update(ctx, c, "::bad", reboundhttp.UpdateOptions{}, incrementCounter); err == nil {
		t.Error("bad URL: no error")
	}
}

// UpdateOptions.Header goes with the read and the write.
func TestUpdateHeader(t *testing.T) {
	s := &etagStore{}
	var seen []string
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Method+" "+r.Header.Get("Authorization"))
		mu.Unlock()
		s.ServeHTTP(w, r)
	}))
	defer srv.Close()
	s.docs = map[string]doc{}
	s.put("/doc", `{"N":1}`)
	opt := reboundhttp.UpdateOptions{Header: http.Header{"Authorization": {"Bearer t"}}, ContentType: "application/merge+json"}
	if _, err := reboundhttp.Update(context.Background(), client(t, fast()), srv.URL+"/doc", opt, incrementCounter); err != nil {
		t.Fatal(err)
	}
	if strings.Join(seen, ",") != "GET Bearer t,PUT Bearer t" || s.docs["/doc"].ctype != "application/merge+json" {
		t.Fatalf("requests %v, content type %q", seen, s.docs["/doc"].ctype)
	}
}

func TestCreate(t *testing.T) {
	s := &etagStore{}
	srv := newETagServer(t, s)
	c := client(t, fast())
	opt := reboundhttp.UpdateOptions{ContentType: "application/json"}
	etag, err := reboundhttp.Create(context.Background(), c, srv.URL+"/new", opt, []byte(`{"N":1}`))
	if err != nil || etag != `"v1"` {
		t.Fatalf("create: %q, %v", etag, err)
	}
	_, err = reboundhttp.Create(context.Background(), c, srv.URL+"/new", opt, []byte(`{"N":2}`))
	if !errors.Is(err, reboundhttp.ErrPreconditionFailed) {
		t.Fatalf("second create: %v, want ErrPreconditionFailed (already exists)", err)
	}
	if got, _ := s.get("/new"); got != `{"N":1}` {
		t.Fatalf("resource %s: the first create was overwritten", got)
	}
}

// A create whose response was lost and that the client repeated meets
// If-None-Match: * as a 412: the outcome is unknown, not "already exists".
func TestCreateLostResponseOutcomeUnknown(t *testing.T) {
	s := &etagStore{afterWrite: func(n int64) bool { return n == 1 }}
	srv := newETagServer(t, s)
	_, err := reboundhttp.Create(context.Background(), client(t, fast()), srv.URL+"/new", reboundhttp.UpdateOptions{}, []byte(`{"N":1}`))
	if !errors.Is(err, reboundhttp.ErrOutcomeUnknown) || errors.Is(err, reboundhttp.ErrPreconditionFailed) || s.writes.Load() != 2 {
		t.Fatalf("err %v after %d writes; want ErrOutcomeUnknown after 2", err, s.writes.Load())
	}
	if got, _ := s.get("/new"); got != `{"N":1}` {
		t.Fatalf("resource %q", got)
	}
}

// 412 is permanent: the Transport returns it at once, never retried, with
// or without CheckResponse, for PUT (idempotent) and for a keyed POST.
func TestTransportNeverRetries412(t *testing.T) {
	for _, errOnStatus := range []bool{false, true} {
		for _, method := range []string{"PUT", "POST"} {
			t.Run(fmt.Sprintf("%s/CheckResponse=%v", method, errOnStatus), func(t *testing.T) {
				srv := newServer(t, func(w http.ResponseWriter, r *http.Request, n int64) {
					w.WriteHeader(http.StatusPreconditionFailed)
				})
				var retries atomic.Int64
				cfg := fast()
				cfg.Retry.OnRetry = func(rebound.RetryEvent) { retries.Add(1) }
				req, _ := http.NewRequest(method, srv.URL, strings.NewReader("x"))
				req.Header.Set("If-Match", `"v1"`)
				reboundhttp.SetIdempotencyKey(req)
				resp, err := client(t, cfg).Do(req)
				if errOnStatus {
					resp, err = checked(resp, err)
					var se *reboundhttp.StatusError
					if !errors.As(err, &se) || se.StatusCode != 412 || se.Class().Kind != rebound.KindPermanent {
						t.Fatalf("err %v, want a permanent StatusError 412", err)
					}
				} else {
					if err != nil {
						t.Fatal(err)
					}
					resp.Body.Close()
					if resp.StatusCode != 412 {
						t.Fatalf("status %d", resp.StatusCode)
					}
				}
				if srv.hits.Load() != 1 || retries.Load() != 0 {
					t.Fatalf("%d requests, %d retries; want 1 and 0", srv.hits.Load(), retries.Load())
				}
			})
		}
	}
}
