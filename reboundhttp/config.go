package reboundhttp

import (
	"crypto/tls"
	"log/slog"
	"net/http"
	"time"

	"github.com/rebound-go/rebound"
)

// Defaults of Config, from the mission's numbers.
const (
	DefaultConnectTimeout        = 5 * time.Second  // Config.ConnectTimeout
	DefaultTLSHandshakeTimeout   = 5 * time.Second  // Config.TLSHandshakeTimeout
	DefaultResponseHeaderTimeout = 30 * time.Second // Config.ResponseHeaderTimeout
	DefaultStallTimeout          = 30 * time.Second // Config.StallTimeout
)

// Config sets a Transport, or the base transport alone (NewBaseTransport,
// NewBaseClient), which reads only the fields up to Redirect. Its zero value
// is the mission's default (see the package documentation); every field says
// what its zero value means. A negative timeout means none.
type Config struct {
	// ConnectTimeout bounds establishing a TCP connection (DNS included);
	// 0 means 5 s, negative means none. It applies only to the base
	// transport this package builds (NewBaseTransport, and NewClient and
	// NewTransport(nil, ...) on top of it); a base RoundTripper you supply
	// keeps its own.
	ConnectTimeout time.Duration
	// TLSHandshakeTimeout bounds the TLS handshake; 0 means 5 s, negative
	// means none. Like ConnectTimeout, it applies only to our own transport.
	TLSHandshakeTimeout time.Duration
	// ResponseHeaderTimeout bounds the wait for the response headers once the
	// request is written; 0 means 30 s, negative means none. Like
	// ConnectTimeout, it applies only to our own transport.
	ResponseHeaderTimeout time.Duration
	// StallTimeout cuts a response body that delivers nothing for this
	// long while the caller waits in Read (ErrStalled); 0 means 30 s,
	// negative means never. It bounds silence, not the total download time,
	// and applies to every base RoundTripper. On our own transport it counts
	// bytes from the server (a silent server is cut after 1 to 9/8 of it), and
	// idle pooled connections are closed after it. transfer's StallTimeout
	// is the same setting, with the same meaning.
	StallTimeout time.Duration
	// TLSClientConfig is the TLS configuration of our own transport (root
	// CAs, client certificates); nil means the defaults, which verify the
	// server's certificate. Ignored when you supply a base RoundTripper.
	TLSClientConfig *tls.Config
	// MaxIdleConnsPerHost is how many idle connections to one host are kept
	// for reuse by our own transport; 0 means net/http's default (2). Raise
	// it to the number of concurrent requests to one host, or connections
	// are closed and opened again under load.
	MaxIdleConnsPerHost int

	// Redirect is the redirect policy of the Clients NewClient and
	// NewBaseClient return; its zero value follows up to 10 redirects
	// safely (see RedirectPolicy). It has no effect on a Transport, which
	// never follows redirects.
	Redirect RedirectPolicy

	// Retry is the retry policy; its zero value is rebound's default (5
	// attempts, 1 s doubling to 30 s with jitter, Retry-After capped at 5 min).
	// Its Clock, Logger and Budget, when nil, are taken from this Config.
	// OnRetry is honoured. Retry.Classify must be nil: Classify, below,
	// judges both responses and errors, so that one verdict drives both the
	// retries and the breaker.
	Retry rebound.Retry

	// Classify judges each attempt: a response (err nil) or a transport
	// error (resp nil). KindNone means success; a response judged anything
	// else is a failure for the breaker and, when Retryable and the request
	// is replayable, is retried (the last one is returned to the caller when
	// retries run out). The same verdict drives the retry and the breaker.
	// nil means DefaultClassify. A custom one may retry a 404 on GET, or
	// refuse to retry a 503, and should fall back to DefaultClassify.
	// A request that is not replayable is never sent twice, whatever the
	// verdict.
	Classify func(resp *http.Response, err error) rebound.Class

	// PrepareRetry, when set, is called on each attempt after the first
	// with a fresh copy of the request (its own Header and URL, its body
	// rewound) and the attempt's number (from 2), before it is sent: the
	// place to re-sign the request or refresh a token. An error from it
	// ends the call (it is permanent unless it carries its own rebound
	// class) and is not charged to the host's breaker.
	PrepareRetry func(req *http.Request, attempt int) error

	// Breaker configures the circuit breaker kept for each scheme and host;
	// its zero value opens after 5 consecutive failed calls (a call's retries
	// count once) for 1 s, growing to 60 s while probes fail; throttled
	// answers (429, 503 with Retry-After) never open it. Each breaker
	// is named by its host; OnStateChange and Logger, when set, see every
	// transition (Logger defaults to Config.Logger, Clock to Config.Clock).
	// Ignored when BreakerFor is set.
	Breaker rebound.BreakerConfig
	// BreakerFor, when set, gives the breaker of each host instead of the
	// sets built from Breaker: per-host settings, or breakers shared between
	// Transports (or with a job.Config.Breakers keyed the same way), so that
	// they agree on which hosts are down. Its key is the URL's host (with
	// its port) for http and https alike, and "scheme://host" for other
	// schemes; it is called once per request, so keep it cheap (a
	// rebound.BreakerSet's Get is), and a nil result means no breaker for
	// that host. Transport.Breakers lists none of them: list your sets.
	BreakerFor func(key string) *rebound.Breaker
	// MaxHosts bounds the breakers kept per scheme; 0 means 1024. Ignored
	// when BreakerFor is set.
	MaxHosts int
	// DisableBreaker turns the per-host breakers off.
	DisableBreaker bool

	// Pacing configures the pacing kept for each scheme and host (see
	// rebound.Pacer): a limit on the requests in flight that grows while
	// they succeed and shrinks on 429s, timeouts and rising latency; a
	// Retry-After on a 429 or 503 pauses every request to the host, not
	// only its own; announced limits (ParseRateLimit) are kept to before
	// the first 429. Its zero value adapts up to 64 requests in flight per
	// host (Pacing.MaxLimit, the per-host maximum), starting at that
	// maximum (Pacing.InitialLimit 0 here means MaxLimit: no host is capped
	// lower until it throttles or slows), and lets up to 1024
	// more callers wait per host (Pacing.MaxQueue, the bulkhead; 0 here
	// means 1024, negative means none wait): beyond that a call fails at
	// once, unsent, with a *rebound.BulkheadError (errors.Is
	// rebound.ErrBulkheadFull, throttled, never charged to the breaker).
	// Pacing.Rate sets a rate per host (a *rate.Limiter from
	// golang.org/x/time/rate fits rebound.RateLimiter). A caller waits
	// in the host's queue, its context's deadline honoured; backoff waits
	// between attempts hold no slot. Pacing.Clock defaults to Clock, and
	// Pacing.MaxPause to Retry.MaxRetryAfter (one cap for a Retry-After).
	Pacing rebound.PaceConfig
	// DisablePacing turns the per-host pacing off: no limit, no host-wide
	// pause, no bulkhead.
	DisablePacing bool

	// Budget is the retry budget; nil means one of rebound's default
	// (rebound.BudgetConfig{}) for this Transport. Share one Budget between
	// Transports that call the same services.
	Budget *rebound.Budget
	// DisableBudget turns the retry budget off.
	DisableBudget bool

	// IdempotencyKeys, when set, gives every POST and PATCH that has no
	// Idempotency-Key a random one (and an X-Request-ID, when absent), the
	// same on every retry of it, so that they are retried like idempotent
	// requests. Only do this when the server deduplicates by that header.
	IdempotencyKeys bool

	// Logger, if set, receives the events: each attempt (Debug), each retry
	// with its wait and reason (Info), each give-up (Warn), each breaker
	// transition (Warn). Secrets never appear in them.
	Logger *slog.Logger
	// Clock drives the backoff waits and the breakers; nil means the system
	// clock. Timeouts use real time, as context deadlines do.
	Clock rebound.Clock
}

// Validate reports a configuration that cannot work, as a *rebound.ConfigError:
// the error NewClient, NewTransport and the base constructors return for it.
func (c *Config) Validate() error {
	if err := c.validateBase(); err != nil {
		return err
	}
	if c.MaxHosts < 0 {
		return &rebound.ConfigError{Field: "reboundhttp.Config.MaxHosts", Reason: "negative"}
	}
	if err := c.Retry.Validate(); err != nil {
		return err
	}
	if !c.DisablePacing {
		if err := c.Pacing.Validate(); err != nil {
			return err
		}
	}
	if c.Retry.Classify != nil {
		return &rebound.ConfigError{Field: "reboundhttp.Config.Retry.Classify", Reason: "set Config.Classify, which sees the response too"}
	}
	if !c.DisableBreaker && c.BreakerFor == nil {
		if _, err := rebound.NewBreaker(c.Breaker); err != nil {
			return err
		}
	}
	return nil
}

// validateBase checks the fields the base transport reads.
func (c *Config) validateBase() error {
	if c.MaxIdleConnsPerHost < 0 {
		return &rebound.ConfigError{Field: "reboundhttp.Config.MaxIdleConnsPerHost", Reason: "negative"}
	}
	return nil
}

// orDefault returns d for 0, 0 for a negative value (none), else v.
func orDefault(v, d time.Duration) time.Duration {
	switch {
	case v == 0:
		return d
	case v < 0:
		return 0
	}
	return v
}
