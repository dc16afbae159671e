package rebound

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Kind says what an error means for the caller's next move.
type Kind uint8

const (
	// KindNone is the Kind of a nil error.
	KindNone Kind = iota
	// KindTransient is a momentary fault (reset connection, timeout, 502/503/504):
	// retrying with backoff is likely to succeed, and it counts against a
	// breaker (unless Class.Unknown says no rule recognised it).
	KindTransient
	// KindThrottled is the server asking the caller to slow down (429, or 503
	// with Retry-After): retry no sooner than Class.RetryAfter. It never
	// counts against a breaker: the service is up, and busy.
	KindThrottled
	// KindPermanent is a fault that retrying cannot fix (400, 401, 403, 404, a bad
	// certificate, a cancelled context): stop at once. It never trips a breaker,
	// since it says nothing about the server's health.
	KindPermanent
)

// String returns "transient", "throttled", "permanent" or "none".
func (k Kind) String() string {
	switch k {
	case KindTransient:
		return "transient"
	case KindThrottled:
		return "throttled"
	case KindPermanent:
		return "permanent"
	}
	return "none"
}

// Retryable reports whether a failure of this kind deserves another attempt.
func (k Kind) Retryable() bool { return k == KindTransient || k == KindThrottled }

// Class is the verdict on one error: its Kind, the wait the server asked for
// (Throttled only; zero when it named none), and a short reason for logs.
type Class struct {
	// Kind decides whether the error is retried and whether a breaker
	// counts it.
	Kind Kind
	// RetryAfter is the wait the server asked for (KindThrottled only; zero
	// when it named none). Retry waits at least this long, up to
	// Retry.MaxRetryAfter, whatever its backoff says.
	RetryAfter time.Duration
	// Reason is a short phrase for logs, such as "timeout" or "http 503".
	// Classify draws it from a small fixed set, not from the error's text,
	// so it is safe to group or count by.
	Reason string
	// Unknown reports that no rule recognised the error: Kind is only
	// Classify's guess for an error it knows nothing of (transient, so it
	// is retried, as every retry library does). A breaker does not count
	// such a failure against the service: nothing shows the service failed
	// (a plain application error, say), and one caller's bug must not shut
	// out every other caller of a healthy host. Mark the error (Transient,
	// Throttled) or classify it yourself to make it count.
	Unknown bool
}

// Classifier decides the Class of a non-nil error. Classify is the default;
// a custom one usually handles its own cases and falls back to Classify.
type Classifier func(err error) Class

// Classed is implemented by errors that know their own class, such as those
// made by Permanent, Transient and Throttled, or reboundhttp.StatusError.
// Classify honours it before anything else.
type Classed interface {
	error
	// Class returns the error's own verdict.
	Class() Class
}

// classedError marks an error with a Class chosen by the caller.
type classedError struct {
	err   error
	class Class
}

func (e *classedError) Error() string { return e.err.Error() }
func (e *classedError) Unwrap() error { return e.err }
func (e *classedError) Class() Class  { return e.class }

// Permanent marks err as not worth retrying. It returns nil for a nil err.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &classedError{err, Class{Kind: KindPermanent, Reason: "marked permanent"}}
}

// Transient marks err as worth retrying. It returns nil for a nil err.
func Transient(err error) error {
	if err == nil {
		return nil
	}
	return &classedError{err, Class{Kind: KindTransient, Reason: "marked transient"}}
}

// Throttled marks err as the remote side asking to wait at least d (zero: use
// the normal backoff). It returns nil for a nil err.
func Throttled(err error, d time.Duration) error {
	if err == nil {
		return nil
	}
	return &classedError{err, Class{Kind: KindThrottled, RetryAfter: max(d, 0), Reason: "marked throttled"}}
}

// Classify returns the Class of err, judged by its meaning, never its text.
// It walks err's chain (Unwrap, and Unwrap() []error for joined errors) and
// the first error it recognises decides:
//
//   - nil: KindNone.
//   - an error that implements Classed: its own Class.
//   - context.Canceled: permanent (the caller gave up; do not retry).
//   - context.DeadlineExceeded: transient (an attempt's own timeout). Retry
//     still stops when the caller's context is done.
//   - ErrOpen (a rejecting circuit breaker), ErrBudgetExhausted: permanent for
//     this call, so it fails fast.
//   - TLS certificate, alert and record-header errors: permanent.
//   - DNS: not-found is permanent; temporary failures and timeouts transient.
//   - connection refused, reset, aborted, broken pipe, host or network
//     unreachable or down, ETIMEDOUT, any net.Error timeout, io.ErrUnexpectedEOF,
//     io.EOF (a peer that hung up mid-call), net.ErrClosed, other network
//     operation errors: transient.
//   - anything else: transient, as in every retry library, with Unknown set
//     so that breakers do not count it; mark your own errors with Permanent
//     or Transient, or supply a Classifier, to say otherwise.
//
// Classify allocates nothing.
func Classify(err error) Class {
	if err == nil {
		return Class{}
	}
	var (
		stack [8]error // joined errors still to walk
		n     int
		netOp string // an *net.OpError seen on the way, if nothing finer is found
	)
	for e := err; ; {
		if c, ok := classifyOne(e); ok {
			return c
		}
		if op, ok := e.(*net.OpError); ok && netOp == "" {
			netOp = op.Op
		}
		switch u := e.(type) {
		case interface{ Unwrap() error }:
			e = u.Unwrap()
		case interface{ Unwrap() []error }:
			errs := u.Unwrap()
			e = nil
			for i := len(errs) - 1; i >= 0; i-- {
				if n < len(stack) {
					stack[n] = errs[i]
					n++
				}
			}
		default:
			e = nil
		}
		if e == nil {
			if n == 0 {
				break
			}
			n--
			e = stack[n]
		}
	}
	if netOp != "" {
		return Class{Kind: KindTransient, Reason: "network " + netOp}
	}
	return Class{Kind: KindTransient, Reason: "error", Unknown: true}
}

// classifyOne judges one link of an error chain, if it recognises it.
func classifyOne(e error) (Class, bool) {
	switch e {
	case context.Canceled:
		return Class{Kind: KindPermanent, Reason: "canceled"}, true
	case context.DeadlineExceeded:
		return Class{Kind: KindTransient, Reason: "timeout"}, true
	case ErrOpen:
		return Class{Kind: KindPermanent, Reason: "circuit open"}, true
	case ErrBudgetExhausted:
		return Class{Kind: KindPermanent, Reason: "retry budget exhausted"}, true
	case io.ErrUnexpectedEOF, io.EOF:
		return Class{Kind: KindTransient, Reason: "unexpected eof"}, true
	case net.ErrClosed:
		return Class{Kind: KindTransient, Reason: "connection closed"}, true
	}
	switch x := e.(type) {
	case Classed:
		return x.Class(), true
	case *OpenError:
		return Class{Kind: KindPermanent, Reason: "circuit open"}, true
	case *tls.CertificateVerificationError, x509.UnknownAuthorityError, x509.HostnameError,
		x509.CertificateInvalidError, *x509.CertificateInvalidError, tls.RecordHeaderError, tls.AlertError:
		return Class{Kind: KindPermanent, Reason: "tls"}, true
	case *net.DNSError:
		if x.IsNotFound && !x.IsTemporary {
			return Class{Kind: KindPermanent, Reason: "dns not found"}, true
		}
		return Class{Kind: KindTransient, Reason: "dns"}, true
	case syscall.Errno:
		if r := errnoReason(x); r != "" {
			return Class{Kind: KindTransient, Reason: r}, true
		}
	case net.Error:
		if x.Timeout() {
			return Class{Kind: KindTransient, Reason: "timeout"}, true
		}
	}
	return Class{}, false
}

// errnoReason names the socket errors that mean "the network hiccupped".
func errnoReason(errno syscall.Errno) string {
	switch errno {
	case syscall.ECONNREFUSED:
		return "connection refused"
	case syscall.ECONNRESET:
		return "connection reset"
	case syscall.ECONNABORTED:
		return "connection aborted"
	case syscall.EPIPE:
		return "broken pipe"
	case syscall.EHOSTUNREACH:
		return "host unreachable"
	case syscall.ENETUNREACH:
		return "network unreachable"
	case syscall.ENETDOWN:
		return "network down"
	case syscall.EHOSTDOWN:
		return "host down"
	case syscall.ETIMEDOUT:
		return "timeout"
	}
	return ""
}

// ClassifyStatus returns the Class of an HTTP status code; idempotent says
// whether the request may safely run twice (see IdempotentMethod).
// retryAfter is the server's Retry-After, already parsed (zero when absent).
//
//	408, 502, 504           transient
//	429                     throttled
//	503                     throttled with a Retry-After, else transient
//	500                     transient for idempotent requests, else permanent
//	other 4xx and 5xx       permanent (400, 401, 403, 404, 405, 409, 410, 412, 422, 501, ...)
//	1xx, 2xx, 3xx           KindNone
func ClassifyStatus(code int, idempotent bool, retryAfter time.Duration) Class {
	switch {
	case code < 400:
		return Class{}
	case code == 429:
		return Class{Kind: KindThrottled, RetryAfter: retryAfter, Reason: "http 429"}
	case code == 503 && retryAfter > 0:
		return Class{Kind: KindThrottled, RetryAfter: retryAfter, Reason: "http 503"}
	case code == 408 || code == 502 || code == 503 || code == 504:
		return Class{Kind: KindTransient, Reason: "http " + strconv.Itoa(code)}
	case code == 500 && idempotent:
		return Class{Kind: KindTransient, Reason: "http 500"}
	}
	return Class{Kind: KindPermanent, Reason: "http " + strconv.Itoa(code)}
}

// IdempotentMethod reports whether an HTTP method may be sent twice with the
// effect of once (RFC 9110 §9.2.2): GET, HEAD, OPTIONS, TRACE, PUT, DELETE.
func IdempotentMethod(method string) bool {
	switch method {
	case "GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE", "":
		return true
	}
	return false
}

// RetryAfterCeiling is the largest wait ParseRetryAfter returns; larger values
// are clamped to it. It is not Retry.MaxRetryAfter, the cap Retry puts on
// the wait it honours (5 min by default).
const RetryAfterCeiling = 24 * time.Hour

// ParseRetryAfter parses a Retry-After header value, delta-seconds ("120") or
// an HTTP-date ("Wed, 21 Oct 2015 07:28:00 GMT", RFC 850 and asctime forms
// too), relative to now. Results, never a panic:
//
//   - empty, garbage, negative or fractional seconds: (0, false), ignore it;
//   - a date in the past: (0, true), retry now;
//   - anything above RetryAfterCeiling (including overflowing digits): RetryAfterCeiling.
func ParseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if v[0] >= '0' && v[0] <= '9' {
		var secs int64
		for i := 0; i < len(v); i++ {
			c := v[i]
			if c < '0' || c > '9' {
				return 0, false
			}
			if secs <= int64(RetryAfterCeiling/time.Second) {
				secs = secs*10 + int64(c-'0')
			}
		}
		if secs > int64(RetryAfterCeiling/time.Second) {
			return RetryAfterCeiling, true
		}
		return time.Duration(secs) * time.Second, true
	}
	for _, layout := range httpDateLayouts {
		t, err := time.Parse(layout, v)
		if err != nil {
			continue
		}
		d := t.Sub(now)
		switch {
		case d < 0:
			return 0, true
		case d > RetryAfterCeiling:
			return RetryAfterCeiling, true
		}
		return d, true
	}
	return 0, false
}

// httpDateLayouts are the three HTTP-date forms of RFC 9110 §5.6.7.
var httpDateLayouts = [...]string{
	"Mon, 02 Jan 2006 15:04:05 GMT",
	"Monday, 02-Jan-06 15:04:05 GMT",
	"Mon Jan _2 15:04:05 2006",
}
