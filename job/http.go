package job

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/rebound-go/rebound"
	"github.com/rebound-go/rebound/internal/redact"
	"github.com/rebound-go/rebound/reboundhttp"
)

// HTTPHandler returns a Handler that sends each item's manifest request (its
// payload is a manifest line) with client, one attempt per call. Every
// request carries the item's Idempotency-Key unless the manifest sets one,
// so a replay after a crash is deduplicated by a server that honours it. A
// status below 400 is success; others become errors classified by
// a *reboundhttp.StatusError (408, 429, 5xx retried; 4xx dead). A redirect
// is success only once followed to an answer with the item's own method: a
// 3xx answer (but 304), or the answer to the GET a client sent in place of
// a redirected POST, is a permanent *reboundhttp.RedirectError. A request
// net/http would refuse to send fails permanently, unsent
// (reboundhttp.ErrInvalidRequest). A nil client means one shared
// reboundhttp.NewBaseClient: the mission's timeouts, a body that goes
// silent cut, the safe redirect policy, and no retries, which are the
// runner's. A client of yours should make one attempt per call too (a
// reboundhttp.NewBaseClient), or its retries multiply the runner's. dir
// resolves relative body_file paths.
func HTTPHandler(client *http.Client, dir string) Handler {
	if client == nil {
		client = defaultClient()
	}
	return func(ctx context.Context, t *Task) error {
		hreq, closeBody, err := itemRequest(ctx, t, dir)
		if err != nil {
			return err
		}
		defer closeBody()
		resp, err := client.Do(hreq)
		if err != nil {
			var ue *url.Error
			if errors.As(redact.URLError(err), &ue) { // queries and userinfo may hold secrets
				if errors.Is(ue.Err, reboundhttp.ErrRedirect) {
					// net/http put the raw Location there; the error names
					// it, redacted, after the URL the item asked for.
					ue.URL = reboundhttp.RedactURL(hreq.URL)
				}
			}
			return err
		}
		defer resp.Body.Close()
		if a, ok := reboundhttp.ParseRateLimit(resp.Header, time.Now()); ok {
			rem, span, _ := a.Pace()
			t.Announce(rem, span) // kept to before the first 429
		}
		if err := reboundhttp.UnfollowedRedirect(hreq, resp); err != nil {
			return err
		}
		// Every request carries an Idempotency-Key and a rewindable body, so
		// it is replayable and even a 500 is safe to retry.
		err = reboundhttp.CheckResponse(resp)
		if err == nil {
			// Drain so the connection is reused; the answer itself is not kept.
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
			return nil
		}
		var se *reboundhttp.StatusError
		if errors.As(err, &se) && len(se.Body) > 0 {
			// The server's own words make a dead item's reason useful;
			// CheckResponse took the request's credentials out of them
			// (a server that echoes the request would put them into the
			// state file and 'rebound status').
			return fmt.Errorf("%w: %s", err, oneLine(se.Body, 200))
		}
		return err
	}
}

// itemRequest builds the request of t's manifest line; closeBody closes
// its body_file once the call is over.
func itemRequest(ctx context.Context, t *Task, dir string) (hreq *http.Request, closeBody func(), err error) {
	var req Request
	if err := json.Unmarshal(t.Payload, &req); err != nil {
		return nil, nil, rebound.Permanent(fmt.Errorf("item %q: stored request is not valid JSON: %w", t.ID, err))
	}
	if req.Method == "" {
		req.Method = http.MethodGet
	}
	var body io.Reader
	isJSON := false
	closeBody = func() {}
	if req.BodyFile != "" {
		f, err := os.Open(req.BodyPath(dir))
		if err != nil {
			return nil, nil, rebound.Permanent(fmt.Errorf("item %q: body_file: %w", t.ID, err))
		}
		body, closeBody = f, func() { _ = f.Close() }
	} else {
		b, j, err := req.BodyBytes()
		if err != nil {
			return nil, nil, rebound.Permanent(fmt.Errorf("item %q: body: %w", t.ID, err))
		}
		if b != nil {
			body, isJSON = bytes.NewReader(b), j
		}
	}
	fail := func(err error) (*http.Request, func(), error) {
		closeBody()
		return nil, nil, err
	}
	hreq, err = http.NewRequestWithContext(ctx, req.Method, req.URL, body)
	if err != nil {
		return fail(rebound.Permanent(fmt.Errorf("item %q: %w", t.ID, redact.URLError(err))))
	}
	if f, ok := body.(*os.File); ok {
		// Send a Content-Length rather than a chunked body: many servers
		// refuse chunked uploads.
		fi, err := f.Stat()
		if err != nil {
			return fail(rebound.Permanent(fmt.Errorf("item %q: body_file: %w", t.ID, err)))
		}
		hreq.ContentLength = fi.Size()
		// A 307 or 308 re-sends the body: from the file, opened again.
		path := req.BodyPath(dir)
		hreq.GetBody = func() (io.ReadCloser, error) { return os.Open(path) }
	}
	for k, v := range req.Headers {
		hreq.Header.Set(k, v)
	}
	if hreq.Header.Get("Idempotency-Key") == "" {
		hreq.Header.Set("Idempotency-Key", t.Key)
	}
	if isJSON && hreq.Header.Get("Content-Type") == "" {
		hreq.Header.Set("Content-Type", "application/json")
	}
	if err := reboundhttp.ValidateRequest(hreq); err != nil {
		return fail(err) // permanent: net/http would refuse it whatever the client
	}
	return hreq, closeBody, nil
}

// defaultClient is HTTPHandler's client when none is given, built once so
// that its connections are reused.
var defaultClient = sync.OnceValue(func() *http.Client {
	c, _ := reboundhttp.NewBaseClient(reboundhttp.Config{}) // the zero Config is valid
	return c
})

// oneLine folds a response body into one short line for messages: runs of
// white space and control characters become one space, and it is cut at n
// bytes on a UTF-8 boundary.
func oneLine(b []byte, n int) string {
	var sb strings.Builder
	space := false
	for _, r := range string(b) {
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			space = sb.Len() > 0
			continue
		}
		if space {
			sb.WriteByte(' ')
			space = false
		}
		if sb.Len()+utf8.RuneLen(r) > n {
			sb.WriteString("…")
			break
		}
		sb.WriteRune(r)
	}
	return sb.String()
}
