package reboundhttp_test

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rebound-go/rebound"
	"github.com/rebound-go/rebound/internal/redact"
	"github.com/rebound-go/rebound/reboundhttp"
	"github.com/rebound-go/rebound/reboundtest"
)

// FuzzStatusError feeds what a server controls (status, Retry-After, body)
// to NewStatusError: it must never panic, keep Retry-After within
// [0, rebound.RetryAfterCeiling], keep at most MaxBodySnippet bytes of the body
// (its prefix, made printable), and classify by the status, its Retry-After and
// whether the request was replayable: rebound.ClassifyStatus, except that a
// 409 with a Retry-After to a replayable request is throttled for that wait
// (an Idempotency-Key server saying the first request still runs).
func FuzzStatusError(f *testing.F) {
	f.Add(503, "120", []byte("busy"), true)
	f.Add(429, "Wed, 21 Oct 2015 07:28:00 GMT", []byte{}, true)
	f.Add(503, "Thu, 01 Jan 2026 00:01:30 GMT", bytes.Repeat([]byte("x"), 5000), false)
	f.Add(500, "99999999999999999999999", []byte("\x00\xff"), false)
	f.Add(404, "-1", []byte(nil), true)
	f.Add(502, " 1.5 ", []byte("é"), true)
	f.Add(409, "1", []byte("in flight"), true) // the old oracle failed here
	f.Add(409, "1", []byte("in flight"), false)
	now := reboundtest.Epoch
	f.Fuzz(func(t *testing.T, code int, retryAfter string, body []byte, replayable bool) {
		req, _ := http.NewRequest("GET", "https://user:pw@example.com/a/b?token=t", nil)
		resp := &http.Response{
			StatusCode: code,
			Header:     http.Header{"Retry-After": {retryAfter}},
			Body:       io.NopCloser(bytes.NewReader(body)),
			Request:    req,
		}
		se := reboundhttp.NewStatusError(resp, replayable, now)
		if se.RetryAfter < 0 || se.RetryAfter > rebound.RetryAfterCeiling {
			t.Fatalf("RetryAfter %v out of range for %q", se.RetryAfter, retryAfter)
		}
		n := min(len(body), reboundhttp.MaxBodySnippet)
		if want := redact.Printable(string(body[:n])); string(se.Body) != want {
			t.Fatalf("snippet %q, want the first %d bytes made printable, %q", se.Body, n, want)
		}
		if se.URL != "https://example.com/a/b" {
			t.Fatalf("URL %q", se.URL)
		}
		msg := se.Error()
		if strings.Contains(msg, "token") || strings.Contains(msg, "pw@") {
			t.Fatalf("secret in %q", msg)
		}
		c := se.Class()
		want := rebound.ClassifyStatus(code, replayable, se.RetryAfter)
		if code == http.StatusConflict && replayable && se.RetryAfter > 0 {
			want = rebound.Class{Kind: rebound.KindThrottled, RetryAfter: se.RetryAfter, Reason: "http 409 (in flight)"}
		}
		if c != want {
			t.Fatalf("class %v, want %v", c, want)
		}
		if code == 429 && c.RetryAfter != se.RetryAfter {
			t.Fatalf("429 lost its Retry-After")
		}
	})
}

func TestStatusErrorRetryAfterForms(t *testing.T) {
	now := reboundtest.Epoch
	for v, want := range map[string]time.Duration{
		"120": 120 * time.Second,
		now.Add(time.Minute).Format(http.TimeFormat): time.Minute,
		"31536000": rebound.RetryAfterCeiling,
		"garbage":  0,
		"":         0,
		"-5":       0,
	} {
		resp := &http.Response{StatusCode: 503, Header: http.Header{"Retry-After": {v}}, Body: http.NoBody}
		se := reboundhttp.NewStatusError(resp, false, now)
		if se.RetryAfter != want {
			t.Errorf("Retry-After %q: %v, want %v", v, se.RetryAfter, want)
		}
		kind := rebound.KindTransient
		if want > 0 {
			kind = rebound.KindThrottled
		}
		if se.Class().Kind != kind {
			t.Errorf("Retry-After %q: kind %v, want %v", v, se.Class().Kind, kind)
		}
	}
}
