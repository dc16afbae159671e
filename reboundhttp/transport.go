package reboundhttp

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/rebound-go/rebound"
)

// Transport is an http.RoundTripper that makes requests fault-tolerant: see
// the package documentation for the model. Build it with NewTransport; it is
// safe for concurrent use.
type Transport struct {
	base       http.RoundTripper
	plain      http.RoundTripper // for http:// when we built base: see newBaseTransports
	retry      rebound.Retry
	userRetry  func(rebound.RetryEvent)
	sets       [2]*rebound.BreakerSet // http, https (others go in [0] keyed with their scheme)
	stall      time.Duration          // for a body wrapper; 0 when off or done by our connections
	clock      rebound.Clock
	logger     *slog.Logger
	idemKeys   bool
	errOnStat  bool
	invalidErr error
}

// NewClient returns an *http.Client whose Transport is NewTransport(nil, cfg)
// and whose CheckRedirect is cfg.Redirect.Check (see RedirectPolicy: a
// redirect that would turn a POST into a GET, loop, downgrade to http or
// carry the caller's headers to another origin is not followed). It sets no
// Client.Timeout: bound a whole call with the request's context, which
// always wins.
func NewClient(cfg Config) *http.Client {
	return &http.Client{Transport: NewTransport(nil, cfg), CheckRedirect: cfg.Redirect.Check}
}

// NewTransport returns a Transport that sends each attempt through base. A
// nil base means a clone of http.DefaultTransport with Config's connect, TLS
// handshake and response header timeouts. An invalid cfg (see
// Config.Validate) gives a Transport whose every RoundTrip returns that error.
func NewTransport(base http.RoundTripper, cfg Config) *Transport {
	t := &Transport{
		stall:     orDefault(cfg.BodyStallTimeout, DefaultBodyStallTimeout),
		clock:     cfg.Clock,
		logger:    cfg.Logger,
		idemKeys:  cfg.IdempotencyKeys,
		errOnStat: cfg.ErrorOnStatus,
	}
	if t.clock == nil {
		t.clock = rebound.SystemClock{}
	}
	if err := cfg.Validate(); err != nil {
		t.invalidErr = err
		return t
	}
	if base == nil {
		tls, plain := newBaseTransports(&cfg)
		base, t.plain = tls, plain
		t.stall = 0 // our connections enforce it, exactly and per byte
	}
	t.base = base

	t.retry = cfg.Retry
	if t.retry.Name == "" {
		t.retry.Name = "http"
	}
	if t.retry.Clock == nil {
		t.retry.Clock = cfg.Clock
	}
	if t.retry.Logger == nil {
		t.retry.Logger = cfg.Logger
	}
	if t.retry.Budget == nil && !cfg.DisableBudget {
		t.retry.Budget = cfg.Budget
		if t.retry.Budget == nil {
			t.retry.Budget, _ = rebound.NewBudget(rebound.BudgetConfig{}) // the zero config is valid
		}
	}
	if cfg.DisableBudget {
		t.retry.Budget = nil
	}
	t.userRetry = t.retry.OnRetry
	t.retry.OnRetry = t.onRetry

	if !cfg.DisableBreaker {
		bc := cfg.Breaker
		if bc.Clock == nil {
			bc.Clock = cfg.Clock
		}
		if bc.Logger == nil {
			bc.Logger = cfg.Logger
		}
		for i := range t.sets {
			t.sets[i], _ = rebound.NewBreakerSet(bc, cfg.MaxHosts) // validated above
		}
	}
	return t
}

// newBaseTransports clones http.DefaultTransport with the Config's timeouts,
// twice. The one for https (where HTTP/2 streams share a connection) leaves
// the response header timeout to net/http, which times each stream. The one
// for http speaks HTTP/1.1, one request at a time per connection, so its
// connections time the wait for the response themselves (stallConn), which
// is as exact and saves net/http's timer: three allocations per request.
// Both connections cut a server that goes silent for the body stall timeout.
func newBaseTransports(cfg *Config) (tls, plain *http.Transport) {
	if dt, ok := http.DefaultTransport.(*http.Transport); ok {
		tls = dt.Clone()
	} else {
		tls = &http.Transport{Proxy: http.ProxyFromEnvironment, ForceAttemptHTTP2: true, MaxIdleConns: 100, IdleConnTimeout: 90 * time.Second}
	}
	d := &net.Dialer{Timeout: orDefault(cfg.ConnectTimeout, DefaultConnectTimeout), KeepAlive: 30 * time.Second}
	header := orDefault(cfg.ResponseHeaderTimeout, DefaultResponseHeaderTimeout)
	stall := orDefault(cfg.BodyStallTimeout, DefaultBodyStallTimeout)
	tls.DialContext = d.DialContext
	tls.TLSHandshakeTimeout = orDefault(cfg.TLSHandshakeTimeout, DefaultTLSHandshakeTimeout)
	tls.ResponseHeaderTimeout = header
	if cfg.TLSClientConfig != nil {
		tls.TLSClientConfig = cfg.TLSClientConfig.Clone()
	}
	if cfg.MaxIdleConnsPerHost > 0 {
		tls.MaxIdleConnsPerHost = cfg.MaxIdleConnsPerHost
	}
	plain = tls.Clone()
	plain.ResponseHeaderTimeout = 0
	if stall > 0 || header > 0 {
		plain.DialContext = stallDialer(d.DialContext, stall, header)
	}
	if stall > 0 {
		tls.DialContext = stallDialer(d.DialContext, stall, max(stall, header))
	}
	return tls, plain
}

// CloseIdleConnections closes the idle connections of the base RoundTripper,
// if it has that method (http.Client.CloseIdleConnections calls this).
func (t *Transport) CloseIdleConnections() {
	for _, rt := range [...]http.RoundTripper{t.base, t.plain} {
		if c, ok := rt.(interface{ CloseIdleConnections() }); ok {
			c.CloseIdleConnections()
		}
	}
}

// Breakers calls f for each per-host breaker, keyed "scheme://host", for
// status displays.
func (t *Transport) Breakers(f func(key string, b *rebound.Breaker)) {
	for i, s := range t.sets {
		if s == nil {
			continue
		}
		s.Each(func(k string, b *rebound.Breaker) {
			if i == 1 {
				k = "https://" + k
			} else if !hasScheme(k) {
				k = "http://" + k
			}
			f(k, b)
		})
	}
}

func hasScheme(k string) bool {
	for i := 0; i+2 < len(k); i++ {
		if k[i] == ':' && k[i+1] == '/' && k[i+2] == '/' {
			return true
		}
	}
	return false
}

// breaker returns the breaker for u's scheme and host, or nil when disabled.
// The common schemes key their own set by host alone, so the lookup builds
// no string.
func (t *Transport) breaker(u *url.URL) *rebound.Breaker {
	if t.sets[0] == nil {
		return nil
	}
	switch u.Scheme {
	case "https":
		return t.sets[1].Get(u.Host)
	case "http":
		return t.sets[0].Get(u.Host)
	}
	return t.sets[0].Get(u.Scheme + "://" + u.Host)
}

// errStatus stands, for the breaker, for a response with a status >= 400.
var errStatus = errors.New("reboundhttp: retryable status")

// RoundTrip sends req with the Transport's policies. See the package
// documentation for what it returns. Like every RoundTripper, it closes
// req.Body, even on errors, and never modifies req.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.invalidErr != nil {
		closeBody(req)
		return nil, t.invalidErr
	}
	if err := ValidateRequest(req); err != nil {
		// net/http would refuse it before sending, with an error that reads
		// as transient: the caller's fault must not be retried or charged
		// to the host's breaker.
		closeBody(req)
		return nil, err
	}
	var (
		ctx        = req.Context()
		rewindable = req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
		keyed      = hasIdempotencyKey(req.Header)
		out        = req // what the first attempt sends
	)
	if t.idemKeys && !keyed && (req.Method == http.MethodPost || req.Method == http.MethodPatch) {
		out = withKeys(req)
		keyed = true
	}
	replayable := rewindable && (rebound.IdempotentMethod(req.Method) || keyed)

	var (
		resp    *http.Response
		attempt int
		sent    bool // req.Body went to the base RoundTripper, which closes it
		br      = t.breaker(req.URL)
		rt      = t.base
	)
	if t.plain != nil && req.URL.Scheme == "http" {
		rt = t.plain
	}
	err := t.retry.Do(ctx, func(ctx context.Context) error {
		attempt++
		r := out
		if attempt > 1 {
			var err error
			if r, err = rewound(out); err != nil {
				return err // a *notReplayableError: permanent
			}
		}
		var permit rebound.Permit
		if br != nil {
			var err error
			// A retry's failure does not count again (AllowRetry): one call
			// to one broken URL never opens its host's breaker by itself.
			if attempt > 1 {
				permit, err = br.AllowRetry()
			} else {
				permit, err = br.Allow()
			}
			if err != nil {
				return err
			}
		}
		if t.logger != nil && t.logger.Enabled(ctx, slog.LevelDebug) {
			t.logger.LogAttrs(ctx, slog.LevelDebug, "attempt", slog.String("method", req.Method),
				slog.String("url", RedactURL(req.URL)), slog.Int("attempt", attempt))
		}
		sent = true
		res, err := rt.RoundTrip(r)
		if err != nil {
			class := rebound.Classify(err)
			if ctx.Err() != nil {
				permit.Done(err, rebound.Class{}) // the caller gave up: no verdict on the server
			} else {
				permit.Done(err, class)
			}
			if class.Kind.Retryable() && ctx.Err() == nil {
				if !rewindable {
					return &notReplayableError{req.Method, RedactURL(req.URL), "its body cannot be rewound (Request.GetBody is nil)", err}
				}
				if !replayable && !neverReached(err) {
					return &notReplayableError{req.Method, RedactURL(req.URL), "it may have reached the server and " + req.Method + " without an Idempotency-Key is not idempotent", err}
				}
			}
			return err
		}
		if t.stall > 0 && res.Body != nil && res.Body != http.NoBody && res.StatusCode != http.StatusSwitchingProtocols {
			res.Body = &stallBody{rc: res.Body, d: t.stall}
		}
		if res.StatusCode < 400 {
			permit.Done(nil, rebound.Class{})
			resp = res
			return nil
		}
		se := newStatusError(res, replayable, t.clock.Now())
		class := se.Class()
		permit.Done(errStatus, class)
		if !class.Kind.Retryable() || !replayable {
			resp = res // the answer, or a request we may not repeat
			return nil
		}
		se.resp = res // kept until onRetry drains it or the caller gets it
		if br != nil && br.State() == rebound.StateOpen {
			// This failure opened the breaker: the next attempt would only
			// wait a backoff to be refused. Stop, and give the caller this
			// answer as when attempts run out.
			return &breakerOpened{se}
		}
		return se
	})
	if err == nil {
		if t.errOnStat && resp.StatusCode >= 400 {
			se := NewStatusError(resp, replayable, t.clock.Now())
			drain(resp.Body)
			return nil, se
		}
		return resp, nil
	}
	if re, ok := err.(*rebound.RetryError); ok {
		if se := lastStatus(re.Last); se != nil && se.resp != nil {
			last := se.resp
			se.resp = nil
			if !t.errOnStat {
				return last, nil // net/http's contract: a response means err == nil
			}
			se.Body, _ = readSnippet(last.Body)
			drain(last.Body)
		}
	}
	if !sent {
		closeBody(req)
	}
	return nil, err
}

// breakerOpened is a retryable status answer whose failure opened the
// breaker: retrying stops at once, the answer is kept for the caller.
type breakerOpened struct{ *StatusError }

func (e *breakerOpened) Unwrap() error { return e.StatusError }

// Class implements rebound.Classed: nothing more to try now.
func (e *breakerOpened) Class() rebound.Class {
	return rebound.Class{Kind: rebound.KindPermanent, Reason: "circuit opened by this failure"}
}

// lastStatus returns the *StatusError a failed attempt ended with, if any.
func lastStatus(err error) *StatusError {
	switch e := err.(type) {
	case *StatusError:
		return e
	case *breakerOpened:
		return e.StatusError
	}
	return nil
}

// onRetry runs before each backoff wait: the failed attempt's response is no
// longer a candidate for the caller, so drain it now and free its connection.
func (t *Transport) onRetry(ev rebound.RetryEvent) {
	if se, ok := ev.Err.(*StatusError); ok && se.resp != nil {
		body := se.resp.Body
		se.resp = nil
		se.Body, _ = readSnippet(body)
		drain(body)
	}
	if t.userRetry != nil {
		t.userRetry(ev)
	}
}

// rewound returns a shallow copy of r with a fresh body from GetBody.
func rewound(r *http.Request) (*http.Request, error) {
	c := new(http.Request)
	*c = *r
	if r.Body != nil && r.Body != http.NoBody {
		body, err := r.GetBody()
		if err != nil {
			return nil, &notReplayableError{r.Method, RedactURL(r.URL), "Request.GetBody failed", err}
		}
		c.Body = body
	}
	return c, nil
}

// withKeys returns a shallow copy of r with a fresh Idempotency-Key and, when
// absent, an X-Request-ID of the same value.
func withKeys(r *http.Request) *http.Request {
	c := new(http.Request)
	*c = *r
	c.Header = r.Header.Clone()
	if c.Header == nil {
		c.Header = make(http.Header)
	}
	key := NewIdempotencyKey()
	c.Header.Set("Idempotency-Key", key)
	if c.Header.Get("X-Request-ID") == "" {
		c.Header.Set("X-Request-ID", key)
	}
	return c
}

// hasIdempotencyKey reports whether h names an idempotency key, as net/http
// does: the header's presence counts, even with no value.
func hasIdempotencyKey(h http.Header) bool {
	if h == nil {
		return false
	}
	if _, ok := h["Idempotency-Key"]; ok {
		return true
	}
	_, ok := h["X-Idempotency-Key"]
	return ok
}

// neverReached reports whether err proves the request never reached the
// server: the connection was never made (dial error, DNS).
func neverReached(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	var dns *net.DNSError
	return errors.As(err, &dns)
}

func closeBody(r *http.Request) {
	if r.Body != nil {
		_ = r.Body.Close()
	}
}

// NewIdempotencyKey returns a random 128-bit key from crypto/rand in UUID
// version 4 form (xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx).
func NewIdempotencyKey() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], b[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], b[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], b[8:10])
	s[23] = '-'
	hex.Encode(s[24:36], b[10:16])
	return string(s[:])
}

// SetIdempotencyKey marks req replayable by giving it an Idempotency-Key
// (and an X-Request-ID of the same value, when absent), unless it has one;
// it returns the key. Call it on your own request before sending it: every
// retry of the request then carries the same key.
func SetIdempotencyKey(req *http.Request) string {
	if req.Header == nil {
		req.Header = make(http.Header)
	}
	if k := req.Header.Get("Idempotency-Key"); k != "" {
		return k
	}
	key := NewIdempotencyKey()
	req.Header.Set("Idempotency-Key", key)
	if req.Header.Get("X-Request-ID") == "" {
		req.Header.Set("X-Request-ID", key)
	}
	return key
}

var _ io.Closer = (*stallBody)(nil)
