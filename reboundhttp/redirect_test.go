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
	c := reboundhttp.NewClient(reboundhttp.Config{Redirect: reboundhttp.RedirectPolicy{TrustCrossOrigin: true}})
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
