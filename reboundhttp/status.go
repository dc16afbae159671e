package reboundhttp

import (
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/rebound-go/rebound"
	"github.com/rebound-go/rebound/internal/redact"
)

// MaxBodySnippet is the most of a response body a StatusError keeps.
const MaxBodySnippet = 1 << 10

// maxDrain is the most of a discarded response body read so that its
// connection can be reused; a longer body costs its connection instead.
const maxDrain = 64 << 10

// ErrNotReplayable is matched (errors.Is) by the error of a request that
// failed and was not retried because sending it again was not safe: it may
// have reached the server and is neither idempotent nor carries an
// Idempotency-Key, or its body cannot be rewound (Request.GetBody is nil).
var ErrNotReplayable = errors.New("reboundhttp: request not replayable")

// StatusError is an HTTP response judged a failure: between attempts for a
// retryable status, and for the caller from CheckResponse. It is the one
// status error of this module (transfer, job and the CLI use it too) and
// implements rebound.Classed, so every rebound policy understands it.
//
// It holds no header values, and its URL has no query or userinfo, so it is
// safe to log. Error() never includes Body, which is the server's text.
type StatusError struct {
	// Method is the request's method.
	Method string
	// URL is the request's URL as scheme://host/path, without userinfo,
	// query or fragment.
	URL string
	// StatusCode is the response's status code, e.g. 503.
	StatusCode int
	// Status is the response's status line, e.g. "503 Service Unavailable",
	// with any control character, bidi control or invalid UTF-8 the server
	// put into its reason phrase escaped (\x1b), so that it is safe to print.
	Status string
	// RetryAfter is the server's Retry-After (seconds or HTTP-date), clamped
	// to rebound.RetryAfterCeiling; 0 when absent, in the past, or garbage.
	RetryAfter time.Duration
	// Body is at most MaxBodySnippet bytes of the response body, when they
	// were read (the response was discarded, or by CheckResponse), made
	// printable (redact.Printable) with every credential of the request
	// (credential header values, the URL's userinfo and query values)
	// replaced by "[redacted]": a server that echoes the request must not
	// put its secrets into a log.
	Body []byte
	// Replayable says whether the request was safe to send again; it decides
	// whether a 500 is retryable.
	Replayable bool

	resp    *http.Response // kept for the caller while retries may still return it
	verdict rebound.Class  // Config.Classify's, when judged
	judged  bool
}

// NewStatusError describes resp, the response to a request that was (or was
// not) replayable, at time now (which Retry-After dates are measured from).
// It reads at most MaxBodySnippet bytes of resp.Body into Body (sanitised,
// see Body) and neither closes nor drains it. It never panics on what a
// server sent. CheckResponse is the usual way to build one.
func NewStatusError(resp *http.Response, replayable bool, now time.Time) *StatusError {
	e := newStatusError(resp, replayable, now)
	if resp.Body != nil {
		e.Body = snippet(resp.Body, resp.Request)
	}
	return e
}

// CheckResponse returns nil for a response with a status below 400, and
// otherwise a *StatusError that describes it (Retry-After parsed, classified
// by DefaultClassify's rules, a sanitised snippet of the body in Body),
// after draining and closing its body. When resp is the last answer of a
// Transport whose retries ran out, the error is the *rebound.RetryError
// around that *StatusError, which says how many attempts were made. Call it
// after Client.Do where a failed status should be an error:
//
//	resp, err := client.Do(req)
//	if err == nil {
//		err = reboundhttp.CheckResponse(resp)
//	}
func CheckResponse(resp *http.Response) error {
	if resp.StatusCode < 400 {
		return nil
	}
	if rb, ok := resp.Body.(*retriedBody); ok {
		if se := lastStatus(rb.err.Last); se != nil {
			se.Body = snippet(rb.ReadCloser, resp.Request)
			drain(rb.ReadCloser)
			return rb.err
		}
	}
	se := newStatusError(resp, Replayable(resp.Request), time.Now())
	if resp.Body != nil {
		se.Body = snippet(resp.Body, resp.Request)
		drain(resp.Body)
	}
	return se
}

// DefaultClassify is the verdict a Transport gives when Config.Classify is
// nil: a transport error by rebound.Classify; a response with a status
// below 400 is a success (KindNone); any other by StatusError.Class, for a
// request that is replayable as Replayable(resp.Request) says. A custom
// Config.Classify falls back to it.
func DefaultClassify(resp *http.Response, err error) rebound.Class {
	if err != nil || resp == nil {
		return rebound.Classify(err)
	}
	if resp.StatusCode < 400 {
		return rebound.Class{}
	}
	return newStatusError(resp, Replayable(resp.Request), time.Now()).Class()
}

// Replayable reports whether req is safe to send again: its body can be
// rewound (no body, or GetBody set), and its method is idempotent or it
// carries an Idempotency-Key (or X-Idempotency-Key), as net/http decides.
// A nil req is not.
func Replayable(req *http.Request) bool {
	if req == nil {
		return false
	}
	rewindable := req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
	return rewindable && (rebound.IdempotentMethod(req.Method) || hasIdempotencyKey(req.Header))
}

func newStatusError(resp *http.Response, replayable bool, now time.Time) *StatusError {
	e := &StatusError{StatusCode: resp.StatusCode, Status: redact.Printable(resp.Status), Replayable: replayable}
	if req := resp.Request; req != nil {
		e.Method = req.Method
		e.URL = RedactURL(req.URL)
	}
	if e.Method == "" {
		e.Method = http.MethodGet
	}
	if v := resp.Header.Get("Retry-After"); v != "" {
		e.RetryAfter, _ = rebound.ParseRetryAfter(v, now)
	}
	return e
}

// snippet reads at most MaxBodySnippet bytes of body and makes them safe
// to print: printable, and without the credentials of req or of the
// requests that redirected to it.
func snippet(body io.Reader, req *http.Request) []byte {
	b, _ := readSnippet(body)
	if len(b) == 0 {
		return b
	}
	var sec redact.Secrets
	for r, n := req, 0; r != nil && n <= DefaultMaxRedirects+1; n++ {
		for k, vs := range r.Header {
			for _, v := range vs {
				sec.AddHeader(k, v)
			}
		}
		if r.URL != nil {
			sec.AddURL(r.URL.String())
		}
		if r.Response == nil {
			break
		}
		r = r.Response.Request
	}
	return []byte(redact.Printable(sec.Scrub(string(b))))
}

// readSnippet reads at most MaxBodySnippet bytes of r.
func readSnippet(r io.Reader) ([]byte, error) {
	buf := make([]byte, MaxBodySnippet)
	n, err := io.ReadFull(r, buf)
	if err == io.ErrUnexpectedEOF || err == io.EOF {
		err = nil
	}
	return buf[:n:n], err
}

// Error says what failed: "reboundhttp: GET https://host/path: 503 Service
// Unavailable (Retry-After 2s)".
func (e *StatusError) Error() string {
	var b strings.Builder
	b.WriteString("reboundhttp: ")
	b.WriteString(e.Method)
	if e.URL != "" {
		b.WriteString(" " + e.URL)
	}
	b.WriteString(": ")
	if e.Status != "" {
		b.WriteString(e.Status)
	} else {
		b.WriteString(strconv.Itoa(e.StatusCode))
	}
	if e.RetryAfter > 0 {
		b.WriteString(" (Retry-After " + e.RetryAfter.String() + ")")
	}
	return b.String()
}

// Class judges the status with rebound.ClassifyStatus: 408, 502, 504
// transient; 429 throttled; 503 throttled with a Retry-After, else
// transient; 500 transient when Replayable; any other status permanent,
// with one exception: a 409 Conflict with a Retry-After to a replayable
// request is throttled. That is how a server that deduplicates by
// Idempotency-Key (the IETF draft, and this module's idempotency
// middleware) says that the first request with this key is still running:
// a retry after the wait gets that request's answer replayed. A 409
// without Retry-After stays permanent.
//
// When a Transport's Config.Classify judged the response, Class is its
// verdict instead.
func (e *StatusError) Class() rebound.Class {
	if e.judged {
		return e.verdict
	}
	if e.StatusCode == http.StatusConflict && e.RetryAfter > 0 && e.Replayable {
		return rebound.Class{Kind: rebound.KindThrottled, RetryAfter: e.RetryAfter, Reason: "http 409 (in flight)"}
	}
	return rebound.ClassifyStatus(e.StatusCode, e.Replayable, e.RetryAfter)
}

// RedactURL returns u as scheme://host/path: no userinfo, query or
// fragment, where tokens and passwords live. Use it for any URL that goes
// into a log line or an error. An opaque URL (mailto:x) shows only its
// scheme; nil gives "".
func RedactURL(u *url.URL) string { return redact.URL(u) }

// notReplayableError is the failure of a request that was not retried
// because sending it again was not safe.
type notReplayableError struct {
	method, url, why string
	err              error
}

func (e *notReplayableError) Error() string {
	return "reboundhttp: " + e.method + " " + e.url + " not retried: " + e.why + ": " + e.err.Error()
}

func (e *notReplayableError) Unwrap() error { return e.err }

func (e *notReplayableError) Is(target error) bool { return target == ErrNotReplayable }

func (e *notReplayableError) Class() rebound.Class {
	return rebound.Class{Kind: rebound.KindPermanent, Reason: "not replayable"}
}

// drain reads up to maxDrain bytes of body and closes it, so that the
// connection goes back to the pool when the rest was short.
func drain(body io.ReadCloser) {
	_, _ = io.CopyN(io.Discard, body, maxDrain)
	_ = body.Close()
}
