package reboundhttp

import (
	"net"
	"net/http"
	"time"
)

// BaseTransport is the layer every HTTP client of this module stands on:
// connect, TLS handshake and response header timeouts, the body stall cut
// (ErrStalled), and request validation (ValidateRequest), with no retries,
// no breaker and no budget. Transport adds those on top of it; transfer,
// job and the rebound CLI, whose own policies decide when to try again,
// use it alone (NewBaseClient). Build it with NewBaseTransport, once, and
// reuse it: its connection pool lives in it. It is safe for concurrent use.
type BaseTransport struct {
	tls   *http.Transport // for https and other schemes
	plain *http.Transport // for http:// (see newBaseTransports)
}

// NewBaseTransport returns the base transport for cfg; it reads only
// ConnectTimeout, TLSHandshakeTimeout, ResponseHeaderTimeout, StallTimeout,
// TLSClientConfig and MaxIdleConnsPerHost. An invalid value among them is a
// *rebound.ConfigError.
func NewBaseTransport(cfg Config) (*BaseTransport, error) {
	if err := cfg.validateBase(); err != nil {
		return nil, err
	}
	return newBaseTransport(&cfg), nil
}

func newBaseTransport(cfg *Config) *BaseTransport {
	tls, plain := newBaseTransports(cfg)
	return &BaseTransport{tls: tls, plain: plain}
}

// NewBaseClient returns an *http.Client on NewBaseTransport(cfg) that
// follows redirects by cfg.Redirect: timeouts and the safe redirect policy,
// one attempt per call. Create it once and reuse it. An invalid cfg is a
// *rebound.ConfigError.
func NewBaseClient(cfg Config) (*http.Client, error) {
	b, err := NewBaseTransport(cfg)
	if err != nil {
		return nil, err
	}
	return &http.Client{Transport: b, CheckRedirect: cfg.Redirect.Check}, nil
}

// RoundTrip sends req once. A request net/http would refuse to send fails
// with an error matching ErrInvalidRequest, unsent.
func (b *BaseTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if err := ValidateRequest(req); err != nil {
		closeBody(req)
		return nil, err
	}
	return b.pick(req).RoundTrip(req)
}

// pick returns the transport for req's scheme.
func (b *BaseTransport) pick(req *http.Request) *http.Transport {
	if req.URL.Scheme == "http" {
		return b.plain
	}
	return b.tls
}

// CloseIdleConnections closes the idle connections of both transports.
func (b *BaseTransport) CloseIdleConnections() {
	b.tls.CloseIdleConnections()
	b.plain.CloseIdleConnections()
}

// newBaseTransports clones http.DefaultTransport with the Config's timeouts,
// twice. The one for https (where HTTP/2 streams share a connection) leaves
// the response header timeout to net/http, which times each stream. The one
// for http speaks HTTP/1.1, one request at a time per connection, so its
// connections time the wait for the response themselves (stallConn), which
// is as exact and saves net/http's timer: three allocations per request.
// Both connections cut a server that goes silent for the stall timeout.
func newBaseTransports(cfg *Config) (tls, plain *http.Transport) {
	if dt, ok := http.DefaultTransport.(*http.Transport); ok {
		tls = dt.Clone()
	} else {
		tls = &http.Transport{Proxy: http.ProxyFromEnvironment, ForceAttemptHTTP2: true, MaxIdleConns: 100, IdleConnTimeout: 90 * time.Second}
	}
	d := &net.Dialer{Timeout: orDefault(cfg.ConnectTimeout, DefaultConnectTimeout), KeepAlive: 30 * time.Second}
	header := orDefault(cfg.ResponseHeaderTimeout, DefaultResponseHeaderTimeout)
	stall := orDefault(cfg.StallTimeout, DefaultStallTimeout)
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
