package transfer

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/rebound-go/rebound"
	"github.com/rebound-go/rebound/reboundhttp"
)

// headerLog records the headers of every request a server got.
type headerLog struct {
	mu sync.Mutex
	hs []http.Header
}

func (l *headerLog) add(r *http.Request) {
	l.mu.Lock()
	l.hs = append(l.hs, r.Header.Clone())
	l.mu.Unlock()
}

func (l *headerLog) all() []http.Header {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]http.Header(nil), l.hs...)
}

// A download redirected to another origin (a CDN; here another port of
// 127.0.0.1) gets the file without carrying the caller's headers or a
// Referer holding the first URL's query there.
func TestDownloadCrossOriginRedirectDropsHeaders(t *testing.T) {
	data := testData(100_000, 7)
	var s served
	var cdnLog headerLog
	content := serveContent(&s, `"v1"`, func() []byte { return data })
	cdn := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cdnLog.add(r)
		content(w, r)
	}))
	defer cdn.Close()
	origin := httptest.NewServer(http.RedirectHandler(cdn.URL+"/blob", http.StatusFound))
	defer origin.Close()
	out := filepath.Join(t.TempDir(), "f.bin")
	_, err := Download(context.Background(), origin.URL+"/f.bin?token=QSECRET", DownloadOptions{Path: out, Store: newStore(t),
		Header: http.Header{"X-Api-Key": {"KSECRET"}, "Authorization": {"Bearer ASECRET"}}})
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, out, data)
	for _, h := range cdnLog.all() {
		for _, k := range []string{"X-Api-Key", "Authorization", "Referer"} {
			if v, ok := h[k]; ok {
				t.Errorf("%s %q reached the other origin", k, v)
			}
		}
	}
}

// A download that a server redirects from https to http fails at once,
// permanently, naming the redacted Location; the http server gets nothing.
func TestDownloadRefusesDowngradeRedirect(t *testing.T) {
	var plainHits atomic.Int64
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { plainHits.Add(1) }))
	defer plain.Close()
	origin := httptest.NewTLSServer(http.RedirectHandler(plain.URL+"/clear?token=LSECRET", http.StatusFound))
	defer origin.Close()
	c := origin.Client()
	c.CheckRedirect = DefaultClient().CheckRedirect // the TLS test client, with our policy
	_, err := Download(context.Background(), origin.URL+"/f.bin", DownloadOptions{Path: filepath.Join(t.TempDir(), "f"), Store: newStore(t),
		Client: c, Pipeline: &rebound.Pipeline{Retry: rebound.Retry{Backoff: rebound.NoDelay}}})
	var re *reboundhttp.RedirectError
	if !errors.As(err, &re) || !strings.Contains(re.Error(), plain.URL+"/clear") || strings.Contains(re.Error(), "LSECRET") {
		t.Fatalf("err %v, want a *RedirectError naming the redacted Location", err)
	}
	if n := plainHits.Load(); n != 0 {
		t.Fatalf("the http server got %d requests", n)
	}
	var retryErr *rebound.RetryError
	if errors.As(err, &retryErr) && retryErr.Attempts != 1 {
		t.Fatalf("%d attempts; a refused redirect is permanent", retryErr.Attempts)
	}
}

// A tus server whose Location names another origin gets the file there, but
// not the caller's headers, unless UploadOptions.CrossOriginHeader says so;
// an https endpoint's upload is never sent to an http Location.
func TestUploadCrossOriginLocation(t *testing.T) {
	for _, trust := range []bool{false, true} {
		storage, storageSrv := newMiniTus(t)
		var storageLog headerLog
		storage.before = func(w http.ResponseWriter, r *http.Request) bool { storageLog.add(r); return false }
		front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodPost {
				w.WriteHeader(http.StatusNoContent) // OPTIONS: core + creation
				return
			}
			// Create the upload on the storage server, and send the client there.
			rec := httptest.NewRecorder()
			storage.ServeHTTP(rec, r)
			w.Header().Set("Location", storageSrv.URL+rec.Header().Get("Location"))
			w.WriteHeader(rec.Code)
		}))
		data := testData(10_000, 3)
		_, err := Upload(context.Background(), writeSrc(t, data), front.URL+"/files/", UploadOptions{Store: newStore(t),
			Header: http.Header{"Authorization": {"Bearer ASECRET"}, "X-Api-Key": {"KSECRET"}}, CrossOriginHeader: trust})
		front.Close()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(storage.content("/files/1"), data) {
			t.Fatalf("storage holds %d bytes", len(storage.content("/files/1")))
		}
		for _, h := range storageLog.all()[1:] { // [0] is the POST, forwarded by the front
			if got := h.Get("Authorization") != "" && h.Get("X-Api-Key") != ""; got != trust {
				t.Fatalf("CrossOriginHeader %v: the storage origin got %v", trust, h)
			}
		}
	}

	_, storageSrv := newMiniTus(t)
	front := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			w.Header().Set("Location", storageSrv.URL+"/files/9")
			w.WriteHeader(http.StatusCreated)
		}
	}))
	defer front.Close()
	_, err := Upload(context.Background(), writeSrc(t, []byte("x")), front.URL+"/files/", UploadOptions{Store: newStore(t), Client: front.Client()})
	if err == nil || !strings.Contains(err.Error(), "http://") || rebound.Classify(err).Kind != rebound.KindPermanent {
		t.Fatalf("https endpoint, http Location: %v", err)
	}
}

// A header net/http would refuse to send fails a transfer at once,
// permanently, before anything is sent: it is the caller's error, not the
// network's, and retrying cannot fix it.
func TestTransferInvalidHeaderIsPermanent(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer srv.Close()
	bad := http.Header{"X-A": {"v\r\nX-Injected: 1"}}
	pipe := &rebound.Pipeline{Retry: rebound.Retry{Backoff: rebound.NoDelay}}
	_, derr := Download(context.Background(), srv.URL+"/f", DownloadOptions{Path: filepath.Join(t.TempDir(), "f"), Store: newStore(t), Header: bad, Pipeline: pipe})
	_, uerr := Upload(context.Background(), writeSrc(t, []byte("x")), srv.URL+"/files/", UploadOptions{Store: newStore(t), Header: bad, Pipeline: pipe})
	for _, err := range []error{derr, uerr} {
		var re *rebound.RetryError
		if !errors.Is(err, reboundhttp.ErrInvalidRequest) || !errors.Is(err, ErrInvalid) || (errors.As(err, &re) && re.Attempts != 1) {
			t.Errorf("err %v, want ErrInvalidRequest after 1 attempt", err)
		}
	}
	if hits.Load() != 0 {
		t.Fatalf("the server got %d requests", hits.Load())
	}
}
