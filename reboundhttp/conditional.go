package reboundhttp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"strings"
	"sync/atomic"
	"time"

	"github.com/rebound-go/rebound/internal/redact"
)

// ErrPreconditionFailed is matched (errors.Is) by the error of a conditional
// write the server refused with 412 Precondition Failed: for Update, someone
// else changed the resource after it was read; for Create, the resource
// already exists. It is permanent: the same request can never succeed, so no
// retry policy repeats it. The error also matches a *StatusError (errors.As)
// with the response's details.
var ErrPreconditionFailed = errors.New("reboundhttp: precondition failed")

// ErrNoETag is matched (errors.Is) by the error of an Update whose read
// returned no strong ETag: the server does not support conditional updates
// for this resource, so no write is sent (a write without If-Match could
// silently overwrite a concurrent change). A weak ETag (W/"…") counts as
// none: If-Match compares strongly and would never match it.
var ErrNoETag = errors.New("reboundhttp: no strong ETag: the server does not support conditional updates")

// ErrOutcomeUnknown is matched (errors.Is) by the error of a conditional
// write that the client sent more than once (its retries, after a response
// was lost) and whose last attempt got 412: an earlier attempt may have been
// applied, and the 412 may be the server seeing that very change. Read the
// resource to find out before doing anything again; redoing the change
// blindly could apply it twice. It does NOT match ErrPreconditionFailed,
// so a loop that redoes an update on ErrPreconditionFailed stays correct.
// A server that deduplicates by Idempotency-Key (every conditional write
// carries one) answers the repeat with the first answer instead, and this
// error does not arise.
var ErrOutcomeUnknown = errors.New("reboundhttp: outcome of a repeated conditional write unknown")

// DefaultMaxResourceBytes is the largest representation Update reads when
// UpdateOptions.MaxBody is zero.
const DefaultMaxResourceBytes = 8 << 20

// UpdateOptions tunes Update and Create. Its zero value sends PUT, takes
// the Content-Type of the write from the read (Update) or sends none
// (Create), adds no headers, and reads at most DefaultMaxResourceBytes.
type UpdateOptions struct {
	// Method is the write's method: PUT (when empty) or PATCH.
	Method string
	// ContentType is the Content-Type of the write; empty means the
	// Content-Type of the representation Update read (for a PATCH, set the
	// patch format's, e.g. application/merge-patch+json).
	ContentType string
	// Header is added to every request made (credentials, Accept). Its
	// values never appear in errors.
	Header http.Header
	// MaxBody bounds the representation read, in bytes; a larger one is an
	// error, never a silent truncation. Zero means DefaultMaxResourceBytes.
	MaxBody int64
}

// Update changes one resource with optimistic concurrency, so that an
// update can never be lost: it GETs rawURL, gives the body to modify, and
// writes what modify returns with If-Match set to the ETag it read. If
// anyone changed the resource in between, the server answers 412 and
// Update returns an error matching ErrPreconditionFailed, leaving the other
// writer's change in place; read again and redo the change if you want to
// (Update never does so on its own: whether the change still makes sense is
// the caller's decision). It returns the ETag of the new representation
// when the server sent one.
//
// The read must answer 200 with a strong ETag, or Update fails with
// ErrNoETag and writes nothing. modify's error is returned as it is, and
// nothing is written. A status >= 400 from the read or the write is
// returned as a *StatusError (with the body's first MaxBodySnippet bytes).
//
// client is typically NewClient's: its retries make both requests survive
// transient faults. The write carries an Idempotency-Key (unless
// opt.Header has one), so it is replayable and a server that deduplicates
// answers a repeat with the first answer. A repeat that a server without
// deduplication refuses with 412 may be refusing the write's own earlier,
// applied attempt: that is reported as ErrOutcomeUnknown, never as
// ErrPreconditionFailed. A write answered with a redirect that would change
// its method, or with a 3xx that came back unfollowed, is a *RedirectError,
// never a success. nil client means net/http's defaults with the
// redirect policy CheckRedirect. Update keeps
// no state: call it from as many goroutines as you like.
func Update(ctx context.Context, client *http.Client, rawURL string, opt UpdateOptions, modify func(current []byte) ([]byte, error)) (etag string, err error) {
	if modify == nil {
		return "", errors.New("reboundhttp: Update: nil modify func")
	}
	method, err := writeMethod(opt.Method)
	if err != nil {
		return "", err
	}
	cur, err := readResource(ctx, client, rawURL, &opt)
	if err != nil {
		return "", err
	}
	if cur.etag == "" {
		return "", fmt.Errorf("reboundhttp: GET %s: %w", redact.URLString(rawURL), ErrNoETag)
	}
	body, err := modify(cur.body)
	if err != nil {
		return "", err
	}
	ctype := opt.ContentType
	if ctype == "" {
		ctype = cur.ctype
	}
	return write(ctx, client, method, rawURL, &opt, ctype, body, "If-Match", cur.etag)
}

// Create writes body to rawURL only if no resource exists there yet, with
// If-None-Match: *, so two clients can never both create it and a repeated
// create never overwrites what was created. A resource that already exists
// gives an error matching ErrPreconditionFailed (and a *StatusError with
// the 412). It returns the ETag of the new representation when the server
// sent one. As with Update, the write carries an Idempotency-Key, and a
// 412 to a repeat is ErrOutcomeUnknown. opt.Method is the method (PUT when empty); nil
// client means net/http's defaults with the redirect policy CheckRedirect.
func Create(ctx context.Context, client *http.Client, rawURL string, opt UpdateOptions, body []byte) (etag string, err error) {
	method, err := writeMethod(opt.Method)
	if err != nil {
		return "", err
	}
	return write(ctx, client, method, rawURL, &opt, opt.ContentType, body, "If-None-Match", "*")
}

func writeMethod(m string) (string, error) {
	switch m {
	case "":
		return http.MethodPut, nil
	case http.MethodPut, http.MethodPatch:
		return m, nil
	}
	return "", fmt.Errorf("reboundhttp: conditional write: method %q is neither PUT nor PATCH", m)
}

// resource is one representation read by readResource.
type resource struct {
	body        []byte
	etag, ctype string
}

// readResource GETs rawURL: a 200 gives its body (bounded), strong ETag (empty
// when absent or weak) and Content-Type; any other status is an error.
func readResource(ctx context.Context, client *http.Client, rawURL string, opt *UpdateOptions) (*resource, error) {
	req, err := newConditionalRequest(ctx, http.MethodGet, rawURL, opt, nil)
	if err != nil {
		return nil, err
	}
	resp, err := do(client, req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		se := NewStatusError(resp, true, time.Now())
		drain(resp.Body)
		return nil, se
	}
	limit := opt.MaxBody
	if limit <= 0 {
		limit = DefaultMaxResourceBytes
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("reboundhttp: GET %s: reading the body: %w", RedactURL(req.URL), err)
	}
	if int64(len(body)) > limit {
		return nil, fmt.Errorf("reboundhttp: GET %s: representation larger than %d bytes (UpdateOptions.MaxBody)", RedactURL(req.URL), limit)
	}
	etag := resp.Header.Get("ETag")
	if !strongETag(etag) {
		etag = ""
	}
	return &resource{body: body, etag: etag, ctype: resp.Header.Get("Content-Type")}, nil
}

// write sends body with the precondition header cond: value and judges the
// answer; see Update.
func write(ctx context.Context, client *http.Client, method, rawURL string, opt *UpdateOptions, ctype string, body []byte, cond, value string) (string, error) {
	// Count the times the request is written, across the client's retries,
	// so that a 412 to a repeat is not mistaken for someone else's change.
	var sent atomic.Int32
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		WroteRequest: func(httptrace.WroteRequestInfo) { sent.Add(1) },
	})
	req, err := newConditionalRequest(ctx, method, rawURL, opt, body)
	if err != nil {
		return "", err
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	req.Header.Set(cond, value)
	if !hasIdempotencyKey(req.Header) {
		// A server that deduplicates replays the first answer to a repeat.
		SetIdempotencyKey(req)
	}
	resp, err := do(client, req)
	var se *StatusError
	switch {
	case err != nil && errors.As(err, &se) && se.StatusCode == http.StatusPreconditionFailed:
		// A client of yours that returns a 412 as an error.
	case err != nil:
		return "", err
	case UnfollowedRedirect(req, resp) != nil:
		drain(resp.Body)
		return "", UnfollowedRedirect(req, resp) // nil on success, so computed twice only here
	case resp.StatusCode < 300:
		_, _ = io.CopyN(io.Discard, resp.Body, maxDrain)
		_ = resp.Body.Close()
		return resp.Header.Get("ETag"), nil
	default:
		se = NewStatusError(resp, true, time.Now())
		drain(resp.Body)
		if resp.StatusCode != http.StatusPreconditionFailed {
			return "", se
		}
	}
	if n := sent.Load(); n > 1 {
		return "", &uncertainError{method: method, url: RedactURL(req.URL), sent: int(n), se: se}
	}
	return "", fmt.Errorf("%w: %w", ErrPreconditionFailed, se)
}

// uncertainError is a 412 to a write that was sent more than once.
type uncertainError struct {
	method, url string
	sent        int
	se          *StatusError
}

func (e *uncertainError) Error() string {
	return fmt.Sprintf("reboundhttp: %s %s: outcome unknown: sent %d times, an earlier attempt may have been applied (its response was lost) and the last was refused: %s",
		e.method, e.url, e.sent, e.se.Status)
}

func (e *uncertainError) Is(target error) bool { return target == ErrOutcomeUnknown }

func (e *uncertainError) Unwrap() error { return e.se }

func newConditionalRequest(ctx context.Context, method, rawURL string, opt *UpdateOptions, body []byte) (*http.Request, error) {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body) // sets GetBody, so retries can resend it
	}
	req, err := http.NewRequestWithContext(ctx, method, rawURL, r)
	if err != nil {
		return nil, fmt.Errorf("reboundhttp: %s %s: %w", method, redact.URLString(rawURL), err)
	}
	for k, vs := range opt.Header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	return req, nil
}

// defaultClient is the nil client of Update and Create: net/http's
// defaults but for the redirect policy.
var defaultClient = &http.Client{CheckRedirect: CheckRedirect}

// do sends req with client; an error's URL loses its query and userinfo.
func do(client *http.Client, req *http.Request) (*http.Response, error) {
	if client == nil {
		client = defaultClient
	}
	resp, err := client.Do(req)
	return resp, redact.URLError(err)
}

// strongETag reports whether v is a strong entity tag: "…" (RFC 9110 §8.8.3).
func strongETag(v string) bool {
	return len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' && !strings.ContainsAny(v[1:len(v)-1], "\"")
}
