package reboundhttp_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/rebound-go/rebound"
	"github.com/rebound-go/rebound/reboundhttp"
)

// recorder is a server that records what each request carried.
type recorder struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []recorded
}

type recorded struct {
	method, path, body string
	header             http.Header
}

func (s *recorder) got() []recorded {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]recorded(nil), s.reqs...)
}

// newRecorder starts a server on 127.0.0.1 that records each request and
// then runs h (nil: answer 200 "ok").
func newRecorder(t *testing.T, tls bool, h http.HandlerFunc) *recorder {
	t.Helper()
	s := &recorder{}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.reqs = append(s.reqs, recorded{r.Method, r.URL.Path, string(b), r.Header.Clone()})
		s.mu.Unlock()
		if h == nil {
			io.WriteString(w, "ok")
			return
		}
		h(w, r)
	})
	if tls {
		s.Server = httptest.NewTLSServer(handler)
	} else {
		s.Server = httptest.NewServer(handler)
	}
	t.Cleanup(s.Close)
	return s
}

func redirectTo(code int, loc string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", loc)
		w.WriteHeader(code)
	}
}

func redirectErr(t *testing.T, err error) *reboundhttp.RedirectError {
	t.Helper()
	var re *reboundhttp.RedirectError
	if !errors.Is(err, reboundhttp.ErrRedirect) || !errors.As(err, &re) {
		t.Fatalf("err %v, want a *RedirectError", err)
	}
	if c := rebound.Classify(err); c.Kind != rebound.KindPermanent {
		t.Fatalf("%v classified %v, want permanent", err, c)
	}
	return re
}

// A POST (or PUT, PATCH, DELETE) answered 301, 302 or 303 is never followed
// as a GET: the call fails, permanently, naming the redacted Location, and
// the GET is never sent.
func TestRedirectThatChangesTheMethodIsRefused(t *testing.T) {
	target := newRecorder(t, false, nil)
	for _, code := range []int{301, 302, 303} {
		for _, method := range []string{"POST", "PUT", "PATCH", "DELETE"} {
			origin := newRecorder(t, false, redirectTo(code, target.URL+"/done?token=secret"))
			req, _ := http.NewRequest(method, origin.URL+"/orders", strings.NewReader(`{"n":1}`))
			req.Header.Set("Idempotency-Key", "k1")
			resp, err := client(t, fast()).Do(req)
			if resp != nil {
				resp.Body.Close()
			}
			re := redirectErr(t, err)
			if re.StatusCode != code || re.Method != method || re.Location != target.URL+"/done" || re.URL != origin.URL+"/orders" {
				t.Fatalf("%d %s: %+v", code, method, re)
			}
			if msg := re.Error(); strings.Contains(msg, "secret") || !strings.Contains(msg, target.URL+"/done") {
				t.Fatalf("%d %s: message %q", code, method, msg)
			}
		}
	}
	if n := len(target.got()); n != 0 {
		t.Fatalf("the redirect target got %d requests, want none", n)
	}
}

// 307 and 308 re-send the same method and body (rewound by GetBody) with the
// caller's headers on the same origin; a body that cannot be rewound is not
// re-sent: the 3xx comes back as the answer.
func TestRedirect307And308ResendMethodAndBody(t *testing.T) {
	for _, code := range []int{307, 308} {
		var s *recorder
		s = newRecorder(t, false, func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/a" {
				redirectTo(code, "/b")(w, r)
				return
			}
			io.WriteString(w, "ok")
		})
		req, _ := http.NewRequest("POST", s.URL+"/a", strings.NewReader("payload"))
		req.Header.Set("Idempotency-Key", "k1")
		req.Header.Set("X-Api-Key", "same-origin")
		resp, err := client(t, fast()).Do(req)
		if err != nil {
			t.Fatalf("%d: %v", code, err)
		}
		readAll(t, resp)
		got := s.got()
		if len(got) != 2 || got[1].method != "POST" || got[1].path != "/b" || got[1].body != "payload" ||
			got[1].header.Get("Idempotency-Key") != "k1" || got[1].header.Get("X-Api-Key") != "same-origin" {
			t.Fatalf("%d: server got %+v", code, got)
		}
		if ref, ok := got[1].header["Referer"]; ok {
			t.Fatalf("%d: Referer %q sent", code, ref)
		}

		// No GetBody: net/http cannot re-send it and hands back the 307.
		req, _ = http.NewRequest("POST", s.URL+"/a", io.MultiReader(strings.NewReader("once")))
		resp, err = client(t, fast()).Do(req)
		if err != nil {
			t.Fatalf("%d unrewindable: %v", code, err)
		}
		resp.Body.Close()
		if resp.StatusCode != code || len(s.got()) != 3 {
			t.Fatalf("%d unrewindable: status %d after %d requests", code, resp.StatusCode, len(s.got()))
		}
	}
}

// A redirect to another origin (here another port of 127.0.0.1) carries
// none of the caller's headers but the safe ones a download needs, and no
// Referer (net/http's would hold the first URL's ?token=).
func TestCrossOriginRedirectDropsCallerHeaders(t *testing.T) {
	other := newRecorder(t, false, nil)
	origin := newRecorder(t, false, redirectTo(302, other.URL+"/file"))
	req, _ := http.NewRequest("GET", origin.URL+"/file?token=secret", nil)
	req.Header.Set("X-Api-Key", "k-secret")
	req.Header.Set("Authorization", "Bearer b-secret")
	req.Header.Set("Cookie", "s=c-secret")
	req.Header.Set("X-Custom", "mine")
	req.Header.Set("Range", "bytes=10-")
	req.Header.Set("If-Range", `"v1"`)
	req.Header.Set("Accept", "text/plain")
	resp, err := client(t, fast()).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, resp)
	got := other.got()
	if len(got) != 1 {
		t.Fatalf("other origin got %d requests", len(got))
	}
	h := got[0].header
	for _, k := range []string{"X-Api-Key", "Authorization", "Cookie", "X-Custom", "Referer"} {
		if v, ok := h[k]; ok {
			t.Errorf("%s: %q reached the other origin", k, v)
		}
	}
	if h.Get("Range") != "bytes=10-" || h.Get("If-Range") != `"v1"` || h.Get("Accept") != "text/plain" {
		t.Errorf("safe headers lost: %v", h)
	}

	// Opted in: the caller's headers follow, but never a Referer.
	req.Header.Set("Cookie", "")
	c := must(reboundhttp.NewClient(reboundhttp.Config{Redirect: reboundhttp.RedirectPolicy{TrustCrossOrigin: true}}))
	defer c.CloseIdleConnections()
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, resp)
	got = other.got()
	if h := got[1].header; h.Get("X-Api-Key") != "k-secret" || h.Get("Referer") != "" {
		t.Fatalf("TrustCrossOrigin: %v", h)
	}
}

// What a hostile server may try is refused, each with a permanent error
// naming the redacted Location: a loop, a downgrade to http, another scheme,
// userinfo of its choosing, a body sent on to another origin.
func TestHostileRedirectsRefused(t *testing.T) {
	plain := newRecorder(t, false, nil)
	var loop *recorder
	loop = newRecorder(t, false, func(w http.ResponseWriter, r *http.Request) { redirectTo(307, "/again")(w, r) })
	tlsOrigin := newRecorder(t, true, redirectTo(302, plain.URL+"/clear?token=secret"))
	tlsClient := func() *http.Client {
		cfg := fast()
		cfg.TLSClientConfig = tlsOrigin.Client().Transport.(*http.Transport).TLSClientConfig
		return client(t, cfg)
	}
	u, _ := url.Parse(plain.URL)
	for name, tc := range map[string]struct {
		c      *http.Client
		method string
		url    string
		why    string
	}{
		"loop":       {client(t, fast()), "GET", loop.URL + "/", "stopped after 10"},
		"downgrade":  {tlsClient(), "GET", tlsOrigin.URL + "/", "https to http"},
		"scheme":     {client(t, fast()), "GET", newRecorder(t, false, redirectTo(302, "ftp://127.0.0.1/x")).URL, "scheme"},
		"userinfo":   {client(t, fast()), "GET", newRecorder(t, false, redirectTo(302, "http://evil:pw@"+u.Host+"/")).URL, "credentials"},
		"body-cross": {client(t, fast()), "PUT", newRecorder(t, false, redirectTo(308, plain.URL+"/put")).URL, "another origin"},
	} {
		req, _ := http.NewRequest(tc.method, tc.url, nil)
		if tc.method == "PUT" {
			req, _ = http.NewRequest(tc.method, tc.url, strings.NewReader("data"))
		}
		resp, err := tc.c.Do(req)
		if resp != nil {
			resp.Body.Close()
		}
		re := redirectErr(t, err)
		if !strings.Contains(re.Reason, tc.why) || strings.Contains(re.Error(), "secret") || strings.Contains(re.Error(), "pw") {
			t.Errorf("%s: %v", name, re)
		}
	}
	if n := len(loop.got()); n != reboundhttp.DefaultMaxRedirects+1 {
		t.Errorf("loop: %d requests, want %d", n, reboundhttp.DefaultMaxRedirects+1)
	}
	if n := len(plain.got()); n != 0 {
		t.Errorf("the plain server got %d requests", n)
	}
}

func TestSameOrigin(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want bool
	}{
		{"http://h/x", "http://h:80/y", true},
		{"https://H/x", "https://h:443/?q", true},
		{"http://h/", "https://h/", false},
		{"http://h:8080/", "http://h:8081/", false},
		{"http://h/", "http://h.evil/", false},
		{"https://h:80/", "http://h:80/", false},
	} {
		a, _ := url.Parse(tc.a)
		b, _ := url.Parse(tc.b)
		if got := reboundhttp.SameOrigin(a, b); got != tc.want {
			t.Errorf("SameOrigin(%s, %s) = %v", tc.a, tc.b, got)
		}
	}
}

// A conditional write answered with a redirect is never taken for done:
// not with the nil client (the safe policy refuses to turn the PUT into a
// GET), not with net/http's default policy (whose GET answer is not the
// PUT's), not when the 3xx comes back unfollowed.
func TestConditionalWriteRedirectIsNotDone(t *testing.T) {
	srv := newRecorder(t, false, func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == "GET":
			w.Header().Set("ETag", `"v1"`)
			io.WriteString(w, "current")
		case r.URL.Path == "/nolocation":
			w.WriteHeader(http.StatusFound)
		default:
			redirectTo(http.StatusFound, "/moved?token=secret")(w, r)
		}
	})
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for name, tc := range map[string]struct {
		c   *http.Client
		url string
	}{"nil client": {nil, srv.URL + "/doc"}, "net/http default": {&http.Client{}, srv.URL + "/doc"},
		"unfollowed": {noFollow, srv.URL + "/doc"}, "no Location": {nil, srv.URL + "/nolocation"}} {
		_, err := reboundhttp.Update(context.Background(), tc.c, tc.url, reboundhttp.UpdateOptions{},
			func(b []byte) ([]byte, error) { return []byte("new"), nil })
		redirectErr(t, err)
		_, err = reboundhttp.Create(context.Background(), tc.c, tc.url, reboundhttp.UpdateOptions{}, []byte("new"))
		if !errors.Is(err, reboundhttp.ErrRedirect) {
			t.Fatalf("%s: Create: %v", name, err)
		}
	}
}

// FuzzRedirectPolicy feeds the zero policy a redirect as net/http would
// build it from what a server controls (status, Location) after a request
// of ours. Whatever the input: a refusal is a permanent *RedirectError
// whose text holds neither the Location's query nor its password; a
// redirect it lets through keeps the method (and so the body), goes to
// http or https only, never from https to http, carries no userinfo the
// server chose and no Referer, and, to another origin, none of the
// caller's credential headers.
func FuzzRedirectPolicy(f *testing.F) {
	f.Add("POST", "https://api.example.com/orders?token=QSECRET", 302, "http://api.example.com/orders")
	f.Add("GET", "https://api.example.com/f?token=QSECRET", 302, "https://cdn.example.net/f?sig=LSECRET")
	f.Add("GET", "http://h:8080/a", 301, "//h:8081/b")
	f.Add("PUT", "https://h/a", 308, "/b")
	f.Add("GET", "https://h/a", 303, "https://u:PSECRET@h/b")
	f.Add("HEAD", "http://h/a", 307, "ftp://h/b")
	f.Add("0", "http://@0", 307, "") // a relative Location keeps the caller's own userinfo
	f.Fuzz(func(t *testing.T, method, from string, code int, location string) {
		first, err := http.NewRequest(method, from, strings.NewReader("body"))
		if err != nil || first.URL.Host == "" || (first.URL.Scheme != "http" && first.URL.Scheme != "https") {
			return
		}
		first.Header.Set("X-Api-Key", "KSECRET")
		first.Header.Set("Authorization", "Bearer ASECRET")
		first.Header.Set("Range", "bytes=1-")
		u, err := first.URL.Parse(location)
		if err != nil {
			return
		}
		// What net/http's Client does for a 3xx (redirectBehavior, copyHeaders).
		next := &http.Request{Method: method, URL: u, Header: first.Header.Clone(), Response: &http.Response{StatusCode: code}}
		switch code {
		case 301, 302, 303:
			if method != "GET" && method != "HEAD" {
				next.Method = "GET"
			} else {
				next.Body, next.GetBody, next.ContentLength = first.Body, first.GetBody, first.ContentLength
			}
		case 307, 308:
			next.Body, next.GetBody, next.ContentLength = first.Body, first.GetBody, first.ContentLength
		default:
			return
		}
		next.Header.Set("Referer", first.URL.String())
		err = reboundhttp.CheckRedirect(next, []*http.Request{first})
		if err != nil {
			var re *reboundhttp.RedirectError
			if !errors.As(err, &re) || rebound.Classify(err).Kind != rebound.KindPermanent {
				t.Fatalf("refusal %v is not a permanent *RedirectError", err)
			}
			msg := err.Error()
			for _, x := range []*url.URL{first.URL, u} {
				pw, _ := x.User.Password()
				if (x.RawQuery != "" && strings.Contains(msg, "?"+x.RawQuery)) || (pw != "" && strings.Contains(msg, ":"+pw+"@")) {
					t.Fatalf("query or password of %s in %q", x, msg)
				}
			}
			return
		}
		switch {
		case next.Method != method:
			t.Fatalf("%s followed as %s", method, next.Method)
		case u.Scheme != "http" && u.Scheme != "https":
			t.Fatalf("followed to scheme %q", u.Scheme)
		case first.URL.Scheme == "https" && u.Scheme == "http":
			t.Fatalf("followed from https to http")
		case u.User != nil && (first.URL.User == nil || u.User.String() != first.URL.User.String()):
			t.Fatalf("followed to userinfo %q the server chose", u.User)
		case next.Header.Get("Referer") != "":
			t.Fatalf("Referer %q sent", next.Header.Get("Referer"))
		}
		if !reboundhttp.SameOrigin(first.URL, u) {
			if next.Header.Get("X-Api-Key") != "" || next.Header.Get("Authorization") != "" {
				t.Fatalf("credentials sent from %s to %s", first.URL, u)
			}
			if next.Body != nil {
				t.Fatalf("a body sent from %s to %s", first.URL, u)
			}
		}
	})
}

// The hop a 307 leads to is retried like any request: its body, rewound by
// GetBody, arrives whole on every attempt.
func TestRedirect307HopRetriedWithItsBody(t *testing.T) {
	var bHits atomic.Int64
	s := newRecorder(t, false, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/a" {
			redirectTo(307, "/b")(w, r)
			return
		}
		if bHits.Add(1) == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ok")
	})
	req, _ := http.NewRequest("POST", s.URL+"/a", strings.NewReader("payload"))
	reboundhttp.SetIdempotencyKey(req)
	resp, err := client(t, fast()).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if body := readAll(t, resp); resp.StatusCode != 200 || body != "ok" {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
	got := s.got()
	if len(got) != 3 {
		t.Fatalf("%d requests, want 3", len(got))
	}
	for _, r := range got {
		if r.method != "POST" || r.body != "payload" || r.header.Get("Idempotency-Key") != req.Header.Get("Idempotency-Key") {
			t.Fatalf("request %+v", r)
		}
	}
}
