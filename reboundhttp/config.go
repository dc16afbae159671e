package reboundhttp

import (
	"crypto/tls"
	"log/slog"
	"time"

	"github.com/rebound-go/rebound"
)

// Defaults of Config, from the mission's numbers.
const (
	DefaultConnectTimeout        = 5 * time.Second  // Config.ConnectTimeout
	DefaultTLSHandshakeTimeout   = 5 * time.Second  // Config.TLSHandshakeTimeout
	DefaultResponseHeaderTimeout = 30 * time.Second // Config.ResponseHeaderTimeout
	DefaultBodyStallTimeout      = 30 * time.Second // Config.BodyStallTimeout
)

// Config sets a Transport. Its zero value is the mission's default (see the
// package documentation); every field says what its zero value means.
type Config struct {
	// ConnectTimeout bounds establishing a TCP connection (DNS included);
	// 0 means 5 s, negative means none. It applies only to the transport
	// NewClient and NewTransport(nil, ...) build; a base RoundTripper you
	// supply keeps its own.
	ConnectTimeout time.Duration
	// TLSHandshakeTimeout bounds the TLS handshake; 0 means 5 s, negative
	// means none. Like ConnectTimeout, it applies only to our own transport.
	TLSHandshakeTimeout time.Duration
	// ResponseHeaderTimeout bounds the wait for the response headers once the
	// request is written; 0 means 30 s, negative means none. Like
	// ConnectTimeout, it applies only to our own transport.
	ResponseHeaderTimeout time.Duration
	// BodyStallTimeout cuts a response body that delivers nothing for this
	// long while the caller waits in Read (ErrStalled); 0 means 30 s,
	// negative means never. It bounds silence, not the total download time,
	// and applies to every base RoundTripper. On our own transport it counts
	// bytes from the server (a silent server is cut after 1 to 9/8 of it), and
	// idle pooled connections are closed after it.
	BodyStallTimeout time.Duration
	// TLSClientConfig is the TLS configuration of our own transport (root
	// CAs, client certificates); nil means the defaults, which verify the
	// server's certificate. Ignored when you supply a base RoundTripper.
	TLSClientConfig *tls.Config
	// MaxIdleConnsPerHost is how many idle connections to one host are kept
	// for reuse by our own transport; 0 means net/http's default (2). Raise
	// it to the number of concurrent requests to one host, or connections
	// are closed and opened again under load.
	MaxIdleConnsPerHost int

	// Retry is the retry policy; its zero value is rebound's default (5
	// attempts, 1 s doubling to 30 s with jitter, Retry-After capped at 5 min).
	// Its Clock, Logger and Budget, when nil, are taken from this Config.
	// OnRetry and Classify are honoured; Classify sees *StatusError for
	// retryable statuses and should fall back to rebound.Classify.
	Retry rebound.Retry

	// Breaker configures the circuit breaker kept for each scheme and host;
	// its zero value opens after 5 consecutive failures for 60 s. Each breaker
	// is named by its host; OnStateChange and Logger, when set, see every
	// transition (Logger defaults to Config.Logger, Clock to Config.Clock).
	Breaker rebound.BreakerConfig
	// MaxHosts bounds the breakers kept per scheme; 0 means 1024.
	MaxHosts int
	// DisableBreaker turns the per-host breakers off.
	DisableBreaker bool

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

	// Redirect is the redirect policy of the Client NewClient returns; its
	// zero value follows up to 10 redirects safely (see RedirectPolicy).
	// It has no effect on a Transport, which never follows redirects.
	Redirect RedirectPolicy

	// ErrorOnStatus turns every final response with a status >= 400 into an
	// error: a *StatusError (within a *rebound.RetryError when retries were
	// made), with the body's first 1 KiB; the response itself is drained and
	// closed. By default such responses are returned with a nil error.
	ErrorOnStatus bool

	// Logger, if set, receives the events: each attempt (Debug), each retry
	// with its wait and reason (Info), each give-up (Warn), each breaker
	// transition (Warn). Secrets never appear in them.
	Logger *slog.Logger
	// Clock drives the backoff waits and the breakers; nil means the system
	// clock. Timeouts use real time, as context deadlines do.
	Clock rebound.Clock
}

// Validate reports a configuration that cannot work, as a *rebound.ConfigError.
// A Transport built from an invalid Config returns this error from every
// RoundTrip, so NewClient and NewTransport never fail or panic.
func (c *Config) Validate() error {
	if c.MaxHosts < 0 {
		return &rebound.ConfigError{Field: "reboundhttp.Config.MaxHosts", Reason: "negative"}
	}
	if c.MaxIdleConnsPerHost < 0 {
		return &rebound.ConfigError{Field: "reboundhttp.Config.MaxIdleConnsPerHost", Reason: "negative"}
	}
	if err := c.Retry.Validate(); err != nil {
		return err
	}
	if !c.DisableBreaker {
		if _, err := rebound.NewBreaker(c.Breaker); err != nil {
			return err
		}
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
