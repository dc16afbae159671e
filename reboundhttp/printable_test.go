package reboundhttp_test

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/rebound-go/rebound/reboundhttp"
)

// A reason phrase that clears the screen or retitles the terminal is
// escaped in the StatusError, whose Status and Error() go to terminals,
// logs and state files.
func TestStatusErrorReasonPhraseEscaped(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, buf, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		fmt.Fprint(buf, "HTTP/1.1 404 Not\x1b[2J\x1b]0;pwned\x07\u202eFound\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
		buf.Flush()
	}))
	defer srv.Close()
	c := must(reboundhttp.NewClient(reboundhttp.Config{}))
	_, err := checked(c.Get(srv.URL + "/x?token=SECRET"))
	var se *reboundhttp.StatusError
	if !errors.As(err, &se) {
		t.Fatalf("got %v, want a *StatusError", err)
	}
	for _, s := range []string{se.Status, se.Error()} {
		if strings.ContainsAny(s, "\x1b\x07\u202e") {
			t.Errorf("control characters pass: %q", s)
		}
	}
	if want := `404 Not\x1b[2J\x1b]0;pwned\x07\u202eFound`; se.Status != want {
		t.Errorf("Status = %q, want %q", se.Status, want)
	}
	if strings.Contains(se.Error(), "SECRET") {
		t.Errorf("the query shows: %v", se)
	}
}
