package job

import (
	"context"
	"encoding/json"
	"errors"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/rebound-go/rebound"
	"github.com/rebound-go/rebound/reboundhttp"
)

// A server that echoes the request in its error answer must not carry the
// manifest's credentials into the item's error (stored in the state file,
// shown by 'rebound status'); the rest of its message stays.
func TestHTTPHandlerScrubsEchoedSecrets(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var b strings.Builder
		r.Header.Write(&b)
		http.Error(w, "bad request "+r.URL.RawQuery+" "+b.String(), http.StatusBadRequest)
	}))
	defer srv.Close()
	task := &Task{ID: "x", Key: "k", Payload: []byte(`{"id":"x","url":"` + srv.URL + `/x?api_key=QUERYSECRET",
		"headers":{"Authorization":"Bearer AUTHSECRET","Cookie":"sid=COOKIESECRET; theme=dark","X-Api-Token":"TOKENSECRET","Content-Type":"text/plain"}}`)}
	err := HTTPHandler(srv.Client(), "")(context.Background(), task)
	if err == nil {
		t.Fatal("a 400 gave no error")
	}
	msg := err.Error()
	for _, s := range []string{"QUERYSECRET", "AUTHSECRET", "COOKIESECRET", "TOKENSECRET"} {
		if strings.Contains(msg, s) {
			t.Errorf("error shows %s: %s", s, msg)
		}
	}
	if !strings.Contains(msg, "bad request") || !strings.Contains(msg, "text/plain") || !strings.Contains(msg, "[redacted]") {
		t.Errorf("error lost the server's message: %s", msg)
	}
}

// A server may echo the request's credentials encoded: percent-encoded as
// the URL carried them, with '+' for a space, JSON-escaped, HTML-escaped.
// None of these forms reaches the item's error, and its text is printable.
func TestHTTPHandlerScrubsEncodedSecrets(t *testing.T) {
	const secret = "ab+cd/ef gh&\"SECRET"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok := r.URL.Query().Get("token")
		j, _ := json.Marshal(tok)
		http.Error(w, "raw "+r.URL.RawQuery+" plus "+url.QueryEscape(tok)+" json "+string(j)+
			" html "+html.EscapeString(tok)+" \x1b[2J\u202e end", http.StatusBadRequest)
	}))
	defer srv.Close()
	payload, _ := json.Marshal(map[string]string{"id": "x", "url": srv.URL + "/x?token=" + url.QueryEscape(secret)})
	err := HTTPHandler(srv.Client(), "")(context.Background(), &Task{ID: "x", Key: "k", Payload: payload})
	if err == nil {
		t.Fatal("a 400 gave no error")
	}
	msg := err.Error()
	if strings.Contains(msg, "SECRET") {
		t.Errorf("error shows the secret: %s", msg)
	}
	if strings.ContainsAny(msg, "\x1b\u202e") {
		t.Errorf("error passes control characters on: %q", msg)
	}
	for _, w := range []string{"raw ", " plus ", " json ", " html ", " end"} {
		if !strings.Contains(msg, w) {
			t.Errorf("error lost %q: %s", w, msg)
		}
	}
}

// runClient is a client like the CLI's: reboundhttp's base client, one
// attempt per call.
func runClient(t *testing.T) *http.Client {
	c, err := reboundhttp.NewBaseClient(reboundhttp.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// A POST answered 301/302/303 is not done: the GET net/http would send in
// its place is not the POST. The item fails permanently, its reason naming
// the redacted Location. With reboundhttp's client the GET is never sent;
// with a client of net/http's defaults it is, but still cannot pass for the
// POST.
func TestHTTPHandlerPostRedirectedIsNotDone(t *testing.T) {
	var thanks atomic.Int64
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		thanks.Add(1)
		io.WriteString(w, "thanks")
	}))
	defer target.Close()
	for _, code := range []int{301, 302, 303} {
		origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, target.URL+"/thanks?token=LOCSECRET", code)
		}))
		for _, c := range []*http.Client{runClient(t), {}} {
			task := &Task{ID: "x", Key: "k", Payload: []byte(`{"id":"x","method":"POST","url":"` + origin.URL + `/orders","body":{"n":1}}`)}
			err := HTTPHandler(c, "")(context.Background(), task)
			var re *reboundhttp.RedirectError
			if !errors.As(err, &re) || rebound.Classify(err).Kind != rebound.KindPermanent {
				t.Fatalf("%d: err %v, want a permanent *RedirectError", code, err)
			}
			if msg := err.Error(); !strings.Contains(msg, target.URL+"/thanks") || strings.Contains(msg, "LOCSECRET") {
				t.Fatalf("%d: reason %q", code, msg)
			}
		}
		origin.Close()
	}
	if n := thanks.Load(); n != 3 {
		t.Fatalf("the target got %d GETs, want 3 (one per default client, none from reboundhttp's)", n)
	}
}

// A 307 re-sends a body_file item's POST with its body (the file is opened
// again), and a 3xx that comes back unfollowed is not success.
func TestHTTPHandlerRedirectedBodyFileAndUnfollowed3xx(t *testing.T) {
	var got atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/a":
			w.Header().Set("Location", "/b")
			w.WriteHeader(307)
		case "/b":
			b, _ := io.ReadAll(r.Body)
			got.Store(r.Method + " " + string(b))
		case "/nolocation":
			w.WriteHeader(302)
		}
	}))
	defer srv.Close()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "body.bin"), []byte("file body"), 0o600); err != nil {
		t.Fatal(err)
	}
	task := &Task{ID: "x", Key: "k", Payload: []byte(`{"id":"x","method":"POST","url":"` + srv.URL + `/a","body_file":"body.bin"}`)}
	if err := HTTPHandler(runClient(t), dir)(context.Background(), task); err != nil {
		t.Fatal(err)
	}
	if g, _ := got.Load().(string); g != "POST file body" {
		t.Fatalf("/b got %q", g)
	}
	task = &Task{ID: "y", Key: "k", Payload: []byte(`{"id":"y","method":"POST","url":"` + srv.URL + `/nolocation","body":"x"}`)}
	err := HTTPHandler(runClient(t), dir)(context.Background(), task)
	if !errors.Is(err, reboundhttp.ErrRedirect) || rebound.Classify(err).Kind != rebound.KindPermanent {
		t.Fatalf("unfollowed 302: err %v", err)
	}
}

// A stored request that net/http would refuse (a header value with CR LF)
// fails permanently before anything is sent, whatever the client.
func TestHTTPHandlerInvalidHeaderIsPermanent(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer srv.Close()
	task := &Task{ID: "x", Key: "k", Payload: []byte(`{"id":"x","url":"` + srv.URL + `","headers":{"X-A":"v\r\nX-Injected: 1"}}`)}
	err := HTTPHandler(&http.Client{}, "")(context.Background(), task)
	if !errors.Is(err, reboundhttp.ErrInvalidRequest) || rebound.Classify(err).Kind != rebound.KindPermanent || hits.Load() != 0 {
		t.Fatalf("err %v (%v), %d requests", err, rebound.Classify(err), hits.Load())
	}
}

// HTTPHandler(nil) sends through reboundhttp's base client, with its
// timeouts and stall cut, not net/http's default transport, which has none.
func TestHTTPHandlerNilClientHasTimeouts(t *testing.T) {
	c := defaultClient()
	if _, ok := c.Transport.(*reboundhttp.BaseTransport); !ok || c.CheckRedirect == nil {
		t.Fatalf("transport %T, CheckRedirect set %v; want reboundhttp's base client", c.Transport, c.CheckRedirect != nil)
	}
	if defaultClient() != c {
		t.Fatal("a new client per call: its connections are never reused")
	}
}
