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

// Transport is the retrying layer: an http.RoundTripper that sends each
// request through a base transport (a BaseTransport unless you supply one)
// with retries, a breaker per host and a retry budget; see the package
// documentation for the model. Build it with NewTransport, once, and reuse
// it: its breakers and budget live in it, so a Transport per request would
// never open a breaker nor spend a budget. It is safe for concurrent use.
type Transport struct {
	base       http.RoundTripper
	plain      http.RoundTripper // for http:// when we built base: see newBaseTransports
	retry      rebound.Retry
	userRetry  func(rebound.RetryEvent)
	classify   func(*http.Response, error) rebound.Class // nil: DefaultClassify's rules, inlined
	prepare    func(*http.Request, int) error
	sets       [2]*rebound.BreakerSet        // http, https (others go in [0] keyed with their scheme)
	breakerFor func(string) *rebound.Breaker // Config.BreakerFor
	pacers     [2]*rebound.PacerSet          // http, https, keyed as sets; nil when pacing is off
	stall      time.Duration                 // for a body wrapper; 0 when off or done by our connections
	clock      rebound.Clock
	logger     *slog.Logger
	idemKeys   bool
}

// NewClient returns an *http.Client whose Transport is NewTransport(nil, cfg)
// and whose CheckRedirect is cfg.Redirect.Check (see RedirectPolicy: a
// redirect that would turn a POST into a GET, loop, downgrade to http or
// carry the caller's headers to another origin is not followed). It sets no
// Client.Timeout: bound a whole call with the request's context, which
// always wins. Create the client once and reuse it, as with net/http: its
// breakers, budget and connections live in it. An invalid cfg (see
// Config.Validate) is a *rebound.ConfigError.
func NewClient(cfg Config) (*http.Client, error) {
	t, err := NewTransport(nil, cfg)
	if err != nil {
		return nil, err
	}
	return &http.Client{Transport: t, CheckRedirect: cfg.Redirect.Check}, nil
}

// NewTransport returns a Transport that sends each attempt through base. A
// nil base means NewBaseTransport(cfg): Config's connect, TLS handshake,
// response header and stall timeouts, on connections of its own. An invalid
// cfg (see Config.Validate) is a *rebound.ConfigError.
func NewTransport(base http.RoundTripper, cfg Config) (*Transport, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	t := &Transport{
		stall:    orDefault(cfg.StallTimeout, DefaultStallTimeout),
		clock:    cfg.Clock,
		logger:   cfg.Logger,
		idemKeys: cfg.IdempotencyKeys,
		classify: cfg.Classify,
		prepare:  cfg.PrepareRetry,
	}
	if t.clock == nil {
		t.clock = rebound.SystemClock{}
	}
	if base == nil {
		// The retrying layer validates each request itself, before its
		// first attempt, so it calls the base's transports directly.
		b := newBaseTransport(&cfg)
		base, t.plain = b.tls, b.plain
		t.stall = 0 // our connections enforce it, exactly and per byte
	}
	t.base = base
	t.retry = retryFor(&cfg)
	t.userRetry = t.retry.OnRetry
	t.retry.OnRetry = t.onRetry

	switch {
	case cfg.DisableBreaker:
	case cfg.BreakerFor != nil:
		t.breakerFor = cfg.BreakerFor
	default:
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
	if !cfg.DisablePacing {
		pc := cfg.Pacing
		if pc.Clock == nil {
			pc.Clock = cfg.Clock
		}
		if pc.InitialLimit == 0 {
			// A drop-in client caps no host below its maximum until the
			// host throttles or slows: callers that hold requests open
			// together (long polls, streams) are not queued behind a
			// slow start.
			pc.InitialLimit = pc.MaxLimit
			if pc.InitialLimit == 0 {
				pc.InitialLimit = rebound.DefaultPaceMaxLimit
			}
		}
		if pc.MaxPause == 0 {
			// One cap for a Retry-After: the host's pause never outlasts
			// the wait the retry itself may take.
			pc.MaxPause = cfg.Retry.MaxRetryAfter
		}
		if pc.MaxQueue == 0 {
			pc.MaxQueue = DefaultMaxQueuePerHost
		}
		for i := range t.pacers {
			t.pacers[i], _ = rebound.NewPacerSet(pc) // validated above
		}
	}
	return t, nil
}

// DefaultMaxQueuePerHost is how many callers may wait for one host's
// pacing when Config.Pacing.MaxQueue is 0.
const DefaultMaxQueuePerHost = 1024

// Pacers calls f for each per-host Pacer the Transport keeps, keyed
// "scheme://host", for status displays (Pacer.Stats).
func (t *Transport) Pacers(f func(key string, p *rebound.Pacer)) {
	for i, s := range t.pacers {
		if s == nil {
			continue
		}
		s.Each(func(k string, p *rebound.Pacer) {
			if i == 1 {
				k = "https://" + k
			} else if !hasScheme(k) {
				k = "http://" + k
			}
			f(k, p)
		})
	}
}

// pacer returns the Pacer for u's scheme and host, or nil when pacing is
// off; keyed like breaker, so the lookup builds no string.
func (t *Transport) pacer(u *url.URL) *rebound.Pacer {
	if t.pacers[0] == nil {
		return nil
	}
	switch u.Scheme {
	case "https":
		return t.pacers[1].Get(u.Host)
	case "http":
		return t.pacers[0].Get(u.Host)
	}
	return t.pacers[0].Get(u.Scheme + "://" + u.Host)
}

// retryFor is cfg.Retry with the Config's defaults filled in.
func retryFor(cfg *Config) rebound.Retry {
	r := cfg.Retry
	if r.Name == "" {
		r.Name = "http"
	}
	if r.Clock == nil {
		r.Clock = cfg.Clock
	}
	if r.Logger == nil {
		r.Logger = cfg.Logger
	}
	switch {
	case cfg.DisableBudget:
		r.Budget = nil
	case r.Budget == nil:
		r.Budget = cfg.Budget
		if r.Budget == nil {
			r.Budget, _ = rebound.NewBudget(rebound.BudgetConfig{}) // the zero config is valid
		}
	}
	return r
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

// Breakers calls f for each per-host breaker the Transport keeps, keyed
// "scheme://host", for status displays; none when Config.BreakerFor gives
// them.
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
// The common schemes are keyed by host alone, so the lookup builds no
// string.
func (t *Transport) breaker(u *url.URL) *rebound.Breaker {
	if f := t.breakerFor; f != nil {
		if u.Scheme == "https" || u.Scheme == "http" {
			return f(u.Host)
		}
		return f(u.Scheme + "://" + u.Host)
	}
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

// errStatus stands, for the breaker, for a response judged a failure.
var errStatus = errors.New("reboundhttp: retryable status")

// RoundTrip sends req with the Transport's policies. See the package
// documentation for what it returns. Like every RoundTripper, it closes
// req.Body, even on errors, never modifies req, and returns a nil error
// whenever it returns a response (use CheckResponse to turn a failed
// status into an error).
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if err := ValidateRequest(req); err != nil {
		// net/http would refuse it before sending, with an error that reads
		// as transient: the caller's fault must not be retried or charged
		// to the host's breaker.
		closeBody(req)
		return nil, err
	}
	c := &call{t: t, req: req, out: req, rt: t.base, br: t.breaker(req.URL)}
	if t.plain != nil && req.URL.Scheme == "http" {
		c.rt = t.plain
	}
	c.rewindable = req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
	keyed := hasIdempotencyKey(req.Header)
	if t.idemKeys && !keyed && (req.Method == http.MethodPost || req.Method == http.MethodPatch) {
		c.out = withKeys(req)
		keyed = true
	}
	c.replayable = c.rewindable && (rebound.IdempotentMethod(req.Method) || keyed)
	if c.pc = t.pacer(req.URL); c.pc != nil {
		// The first slot is taken here: a full bulkhead refuses the call
		// at once, unsent, rather than spending its attempts.
		var err error
		if c.pp, err = c.pc.Acquire(req.Context()); err != nil {
			closeBody(req)
			return nil, err
		}
		c.held = true
	}
	return c.finish(t.retry.Do(req.Context(), c.attempt))
}

// call is the state of one RoundTrip across its attempts.
type call struct {
	t          *Transport
	req        *http.Request // the caller's
	out        *http.Request // what the first attempt sends (req, or a copy with keys)
	rt         http.RoundTripper
	br         *rebound.Breaker
	resp       *http.Response // the answer
	n          int            // attempts made
	sent       bool           // req.Body went to the base RoundTripper, which closes it
	rewindable bool
	replayable bool
	pc         *rebound.Pacer     // the host's pacing, nil when off
	pp         rebound.PacePermit // the slot of the attempt under way
	held       bool               // pp is taken and not yet handed back
}

// pace takes a pacing slot for the attempt, unless the call already
// holds one (the first attempt's, taken in RoundTrip).
func (c *call) pace(ctx context.Context) error {
	if c.pc == nil || c.held {
		return nil
	}
	pp, err := c.pc.Acquire(ctx)
	if err != nil {
		return err
	}
	c.pp, c.held = pp, true
	return nil
}

// paced hands the attempt's slot back with its verdict; a zero Class and
// a nil res for a caller that gave up (no verdict). A response's announced
// limits are kept to from now on.
func (c *call) paced(ctx context.Context, res *http.Response, class rebound.Class) {
	if !c.held {
		return
	}
	c.held = false
	now := c.t.clock.Now()
	if res != nil {
		if a, ok := ParseRateLimit(res.Header, now); ok {
			rem, over, _ := a.Pace()
			c.pc.Announce(now, rem, over)
		}
	}
	if ctx.Err() != nil {
		c.pp.Release()
		return
	}
	c.pp.Done(now, class)
}

// attempt is one attempt, for rebound.Retry.
func (c *call) attempt(ctx context.Context) error {
	c.n++
	r, err := c.request()
	if err != nil {
		return err
	}
	if err := c.pace(ctx); err != nil {
		return err // unsent: no verdict on the host
	}
	var permit rebound.Permit
	if c.br != nil {
		// A retry's failure does not count again (AllowRetry): one call
		// to one broken URL never opens its host's breaker by itself.
		if c.n > 1 {
			permit, err = c.br.AllowRetry()
		} else {
			permit, err = c.br.Allow()
		}
		if err != nil {
			if c.held {
				c.held = false
				c.pp.Release() // unsent: no verdict on the host
			}
			return err
		}
	}
	if l := c.t.logger; l != nil && l.Enabled(ctx, slog.LevelDebug) {
		l.LogAttrs(ctx, slog.LevelDebug, "attempt", slog.String("method", c.req.Method),
			slog.String("url", RedactURL(c.req.URL)), slog.Int("attempt", c.n))
	}
	c.sent = true
	res, err := c.rt.RoundTrip(r)
	if err != nil {
		return c.failed(ctx, permit, err)
	}
	return c.answered(ctx, permit, res)
}

// request returns what attempt c.n sends: the first request, or a fresh
// copy with its body rewound and prepared by Config.PrepareRetry.
func (c *call) request() (*http.Request, error) {
	if c.n == 1 {
		return c.out, nil
	}
	r, err := rewound(c.out)
	if err != nil || c.t.prepare == nil {
		return r, err // a *notReplayableError: permanent
	}
	// The hook may change the headers and the URL: they must be the copy's
	// own, since the caller's request is never modified.
	r.Header = c.out.Header.Clone()
	if r.Header == nil {
		r.Header = make(http.Header)
	}
	u := *c.out.URL
	r.URL = &u
	if err := c.t.prepare(r, c.n); err != nil {
		if r.Body != nil {
			_ = r.Body.Close()
		}
		var cl rebound.Classed
		if !errors.As(err, &cl) {
			err = rebound.Permanent(err)
		}
		return nil, &prepareError{err}
	}
	return r, nil
}

// failed judges an attempt that got no response.
func (c *call) failed(ctx context.Context, permit rebound.Permit, err error) error {
	var class rebound.Class
	if c.t.classify != nil {
		class = c.t.classify(nil, err)
	} else {
		class = rebound.Classify(err)
	}
	if ctx.Err() != nil {
		permit.Done(err, rebound.Class{}) // the caller gave up: no verdict on the server
	} else {
		permit.Done(err, class)
	}
	c.paced(ctx, nil, class)
	if class.Kind.Retryable() && ctx.Err() == nil {
		if !c.rewindable {
			return &notReplayableError{c.req.Method, RedactURL(c.req.URL), "its body cannot be rewound (Request.GetBody is nil)", err}
		}
		if !c.replayable && !neverReached(err) {
			return &notReplayableError{c.req.Method, RedactURL(c.req.URL), "it may have reached the server and " + c.req.Method + " without an Idempotency-Key is not idempotent", err}
		}
	}
	if c.t.classify != nil {
		return &judgedError{err, class} // so that the retry reads the same verdict
	}
	return err
}

// answered judges an attempt that got a response: the answer, or a
// *StatusError to retry.
func (c *call) answered(ctx context.Context, permit rebound.Permit, res *http.Response) error {
	t := c.t
	if t.stall > 0 && res.Body != nil && res.Body != http.NoBody && res.StatusCode != http.StatusSwitchingProtocols {
		res.Body = &stallBody{rc: res.Body, d: t.stall}
	}
	var se *StatusError
	if t.classify == nil {
		if res.StatusCode < 400 {
			permit.Done(nil, rebound.Class{})
			c.paced(ctx, res, rebound.Class{})
			c.resp = res
			return nil
		}
		se = newStatusError(res, c.replayable, t.clock.Now())
	} else {
		class := t.classify(res, nil)
		if class.Kind == rebound.KindNone {
			permit.Done(nil, rebound.Class{})
			c.paced(ctx, res, rebound.Class{})
			c.resp = res
			return nil
		}
		se = newStatusError(res, c.replayable, t.clock.Now())
		se.verdict, se.judged = class, true
	}
	class := se.Class()
	permit.Done(errStatus, class)
	c.paced(ctx, res, class)
	if !class.Kind.Retryable() || !c.replayable {
		c.resp = res // the answer, or a request we may not repeat
		return nil
	}
	se.resp = res // kept until onRetry drains it or the caller gets it
	if c.br != nil && c.br.State() == rebound.StateOpen {
		// This failure opened the breaker: the next attempt would only
		// wait a backoff to be refused. Stop, and give the caller this
		// answer as when attempts run out.
		return &breakerOpened{se}
	}
	return se
}

// finish turns the retry's outcome into RoundTrip's results.
func (c *call) finish(err error) (*http.Response, error) {
	if c.held {
		c.pp.Release() // the retry stopped before the first attempt
		c.held = false
	}
	if err == nil {
		return c.resp, nil
	}
	if re, ok := err.(*rebound.RetryError); ok {
		if se := lastStatus(re.Last); se != nil && se.resp != nil {
			last := se.resp
			se.resp = nil
			// net/http's contract: a response means err == nil. The body
			// remembers the retries, for CheckResponse.
			last.Body = &retriedBody{ReadCloser: last.Body, err: re}
			return last, nil
		}
	}
	if !c.sent {
		closeBody(c.req)
	}
	return nil, err
}

// retriedBody is the body of the last response of a call whose retries on
// a failed status ran out: CheckResponse returns err, which says how many
// attempts were made and why retrying stopped.
type retriedBody struct {
	io.ReadCloser
	err *rebound.RetryError
}

// judgedError carries the verdict of Config.Classify on a transport error
// to the retry, which reads it first (rebound.Classify walks outside in).
type judgedError struct {
	err   error
	class rebound.Class
}

func (e *judgedError) Error() string        { return e.err.Error() }
func (e *judgedError) Unwrap() error        { return e.err }
func (e *judgedError) Class() rebound.Class { return e.class }

// prepareError is the failure of Config.PrepareRetry.
type prepareError struct{ err error }

func (e *prepareError) Error() string { return "reboundhttp: preparing a retry: " + e.err.Error() }
func (e *prepareError) Unwrap() error { return e.err }

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
		body, req := se.resp.Body, se.resp.Request
		se.resp = nil
		se.Body = snippet(body, req)
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
