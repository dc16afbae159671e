package job

import (
	"context"
	"net/http"
	"net/http/httptest"
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
