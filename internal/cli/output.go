package cli

import (
	"errors"
	"net/http"
	"time"

	"github.com/rebound-go/rebound/internal/redact"
	"github.com/rebound-go/rebound/job"
)

// cleaner is what every message of one command goes through before it is
// printed: the request's own secrets scrubbed (in every encoding a server
// may echo them), URLs without query or userinfo, no terminal escapes.
type cleaner struct {
	secrets redact.Secrets
}

// newCleaner knows the secrets of a request to rawURL with header h: the
// URL's userinfo and query values, the values of credential headers.
func newCleaner(rawURL string, h http.Header) *cleaner {
	c := &cleaner{}
	c.secrets.AddURL(rawURL)
	for k, vs := range h {
		for _, v := range vs {
			c.secrets.AddHeader(k, v)
		}
	}
	return c
}

// text cleans s. A nil cleaner knows no secrets but still applies
// redact.Text.
func (c *cleaner) text(s string) string {
	if c != nil {
		s = c.secrets.Scrub(s)
	}
	return redact.Text(s)
}

// err returns err with the message of its exitError (what Main prints)
// cleaned; errors.Is and errors.As still see the original chain.
func (c *cleaner) err(err error) error {
	var ee *exitError
	if errors.As(err, &ee) && ee.err != nil {
		ee.err = &cleanedError{msg: c.text(ee.err.Error()), err: ee.err}
		return err
	}
	if err != nil {
		return &cleanedError{msg: c.text(err.Error()), err: err}
	}
	return nil
}

// cleanedError is an error whose message was cleaned.
type cleanedError struct {
	msg string
	err error
}

func (e *cleanedError) Error() string { return e.msg }
func (e *cleanedError) Unwrap() error { return e.err }

// waitMS is how every --json event gives a wait: whole milliseconds,
// rounded, as a number. Set on every retry event (0 included), absent
// elsewhere.
func waitMS(d time.Duration) *int64 {
	ms := (d + time.Millisecond/2).Milliseconds()
	return &ms
}

// runEvent is the --json form of a job.Event: the same fields, with the
// wait in milliseconds like every other --json event.
type runEvent struct {
	Type    job.EventType `json:"event"`
	Job     string        `json:"job"`
	ID      string        `json:"id"`
	Attempt int           `json:"attempt,omitempty"`
	Kind    string        `json:"kind,omitempty"`
	Err     string        `json:"error,omitempty"`
	WaitMS  *int64        `json:"wait_ms,omitempty"`
}

func newRunEvent(e job.Event) runEvent {
	ev := runEvent{Type: e.Type, Job: e.Job, ID: redact.Printable(e.ID), Attempt: e.Attempt, Kind: e.Kind}
	if e.Err != nil {
		ev.Err = redact.Text(e.Err.Error())
	}
	if e.Type == job.EventRetry {
		ev.WaitMS = waitMS(e.Wait)
	}
	return ev
}
