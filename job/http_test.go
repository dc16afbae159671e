package job

import (
	"context"
	"encoding/json"
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
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
