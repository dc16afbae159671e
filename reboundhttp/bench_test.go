package reboundhttp_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/rebound-go/rebound/reboundhttp"
)

var kib = strings.Repeat("x", 1024)

func benchGet(b *testing.B, c *http.Client, url string) {
	b.ReportAllocs()
	for b.Loop() {
		resp, err := c.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if n != 1024 {
			b.Fatalf("read %d bytes", n)
		}
	}
}

// BenchmarkGet1KiB compares a GET of a 1 KiB body on loopback through a
// plain net/http client and through ours, in the same run.
func BenchmarkGet1KiB(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, kib)
	}))
	defer srv.Close()
	b.Run("nethttp", func(b *testing.B) {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		defer tr.CloseIdleConnections()
		benchGet(b, &http.Client{Transport: tr}, srv.URL)
	})
	b.Run("reboundhttp", func(b *testing.B) {
		c := must(reboundhttp.NewClient(reboundhttp.Config{}))
		defer c.CloseIdleConnections()
		benchGet(b, c, srv.URL)
	})
}

// BenchmarkTransportOverhead isolates what the Transport adds per request:
// the base RoundTripper answers at once from memory, so no network noise
// hides it. "direct" calls the base itself.
func BenchmarkTransportOverhead(b *testing.B) {
	body := &replayBody{}
	base := roundTripFunc(func(req *http.Request) (*http.Response, error) {
		body.r.Reset(kib)
		return &http.Response{StatusCode: 200, Body: body, Request: req}, nil
	})
	req, _ := http.NewRequest("GET", "http://example.com/x", nil)
	run := func(b *testing.B, rt http.RoundTripper) {
		b.ReportAllocs()
		for b.Loop() {
			resp, err := rt.RoundTrip(req)
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
	b.Run("direct", func(b *testing.B) { run(b, base) })
	b.Run("reboundhttp", func(b *testing.B) { run(b, must(reboundhttp.NewTransport(base, reboundhttp.Config{}))) })
	b.Run("reboundhttp-nostall", func(b *testing.B) {
		run(b, must(reboundhttp.NewTransport(base, reboundhttp.Config{StallTimeout: -1})))
	})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

type replayBody struct{ r strings.Reader }

func (b *replayBody) Read(p []byte) (int, error) { return b.r.Read(p) }
func (b *replayBody) Close() error               { return nil }
