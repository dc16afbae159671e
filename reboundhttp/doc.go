// Package reboundhttp is a fault-tolerant net/http client: a drop-in
// *http.Client (NewClient) or an http.RoundTripper around any other
// (NewTransport) that bounds every phase with a timeout, retries what is safe
// to retry with jittered exponential backoff, honours Retry-After, keeps one
// circuit breaker per host, and caps retries with a shared budget.
//
// # Two layers
//
// The base transport (NewBaseTransport, NewBaseClient) bounds connect, TLS
// handshake and response headers, cuts a body that goes silent, refuses a
// request net/http would refuse (ValidateRequest) and follows redirects by
// the safe RedirectPolicy; it makes one attempt per call. transfer, job and
// the rebound CLI send through it, since their own policies decide when to
// try again. The retrying layer (NewTransport, NewClient) stands on it and
// adds retries, the per-host breakers and the budget. Create either once
// and reuse it, as net/http's clients: connections, breakers and budget
// live in it, and a client per request would never open a breaker.
//
// # The model
//
// One call to RoundTrip is one logical request; it makes up to
// Config.Retry.MaxAttempts attempts (5 by default) through rebound.Retry.
// Each attempt asks the breaker of its scheme and host, sends a fresh copy of
// the request (its body rewound with Request.GetBody, and prepared by
// Config.PrepareRetry, which may re-sign it, from the second attempt on), and
// is judged by Config.Classify, which sees the response or the error; one
// verdict drives both the retry and the breaker. By default (DefaultClassify):
//
//   - a transport error is classified by rebound.Classify (a reset, a timeout
//     or a refused connection is transient; a bad certificate or a cancelled
//     context is permanent);
//   - a response with a retryable status (408, 429, 502, 503, 504, and,
//     for a replayable request, 500 and a 409 with a Retry-After, which is
//     how an Idempotency-Key server says "the first request with this key
//     still runs") becomes a *StatusError between attempts, with the
//     server's Retry-After;
//   - any other response is the answer, returned untouched.
//
// A custom Config.Classify may retry a 404 on GET or refuse to retry a 503;
// still, a request that is not replayable (below) is never sent twice.
//
// A request that net/http would refuse to send (a header value with CR, LF
// or NUL, a header name or method that is not a token, a URL without a
// host) fails before any attempt with an error matching ErrInvalidRequest:
// permanent, and never counted against the host's breaker (see
// ValidateRequest).
//
// A request is replayable when its body can be rewound (no body, or GetBody
// set) and either its method is idempotent (GET, HEAD, OPTIONS, TRACE, PUT,
// DELETE) or it carries an Idempotency-Key (or X-Idempotency-Key) header, as
// net/http itself decides. A POST or PATCH without a key is retried only when
// it provably never reached the server: the dial failed (connection refused,
// DNS); any response to it, even a 503, is returned as it is. A body that
// cannot be rewound is never sent twice. Such failures are returned at once,
// with an error that says why the request was not retried (errors.Is
// ErrNotReplayable).
//
// # What the caller gets
//
// net/http's contract holds: whenever an attempt got a response, RoundTrip
// returns it with a nil error. When the retries on a retryable status run out
// (attempts, budget, the context's deadline, or the failure opened the host's
// breaker, so that the next attempt would only be refused), the caller gets the LAST
// response, its body intact; the bodies of the earlier ones were drained (up
// to 64 KiB) and closed so their connections are reused. Call
// CheckResponse(resp) to get a *StatusError for a status >= 400 instead
// (the *rebound.RetryError around it when retries ran out). When no attempt
// got a response, the error is a *rebound.RetryError that says how many
// attempts were made, for how long, why retrying stopped, and wraps the last
// cause (errors.Is(err, rebound.ErrOpen) for an open breaker).
//
// Every response is watched for stalls: a server that sends nothing for
// Config.StallTimeout (30 s) while the caller waits in Read is cut with
// ErrStalled. A slow reader is never cut, and neither is a large healthy
// download: this bounds silence, not total time. On the transport NewClient
// builds, the connections themselves count the bytes (below any chunked or
// gzip decoding) at no cost per request; around a base RoundTripper of
// yours, the response body is timed, which costs one allocation per request
// and sees only what the decoders deliver. Neither starts a goroutine.
//
// Bound a whole call with the request's context, not http.Client.Timeout:
// with a Client.Timeout, net/http starts two goroutines per request for any
// RoundTripper that is not its own *http.Transport (this one included).
//
// # Pacing
//
// Each host also has a rebound.Pacer (Config.Pacing): every attempt takes a
// slot first, so at most the host's current limit is in flight (adapted
// between 1 and 64 by default, starting at 64 so that a drop-in client caps
// no host until it throttles or slows: it shrinks on 429s, timeouts and
// rising latency and grows back while answers succeed). A Retry-After on a 429 or 503 pauses
// every call to the host until then, not only the one that got it, and
// after a throttle the host is paced to a rate that grows back while
// answers succeed. Limits the server announces (RateLimit,
// RateLimit-Policy, X-RateLimit-*: see ParseRateLimit) are kept to before
// the first 429. A caller waits for its slot within its context; backoff
// waits hold none. Past Config.Pacing.MaxQueue waiting callers (1024 per
// host by default) a call is refused at once, unsent, with a
// *rebound.BulkheadError: throttled, never charged to the breaker.
//
// # Redirects
//
// The Transport never follows redirects; the Client NewClient returns
// follows them by Config.Redirect, a RedirectPolicy whose zero value is
// safe where net/http's default is not. A POST, PUT, PATCH or DELETE
// answered 301, 302 or 303 is not re-sent as a bodiless GET whose 2xx would
// pass for the original request's success: the call fails with a
// *RedirectError (errors.Is ErrRedirect, permanent) naming the redacted
// Location. 307 and 308 re-send the same method and body, rewound with
// GetBody (a body without GetBody is not re-sent: the 3xx is the answer).
// Loops (more than 10 redirects), https to http, other schemes and
// server-chosen userinfo are refused; a redirect to another origin carries
// none of the caller's credential-bearing headers, a request with a body is
// not redirected there, and no redirect carries a Referer the caller did not
// set. A 3xx that comes back unfollowed is returned like any other answer.
//
// # Conditional updates
//
// Update is a read-modify-write that cannot lose an update: GET, then PUT
// (or PATCH) with If-Match set to the ETag read, so a change made by
// someone else in between is refused with 412 (ErrPreconditionFailed,
// permanent, never retried) instead of overwritten. Create writes with
// If-None-Match: *, so an existing resource is never overwritten. A
// resource without a strong ETag is an error (ErrNoETag), never a blind
// write. Both writes carry an Idempotency-Key; a 412 to a write the client
// had to send twice is ErrOutcomeUnknown, since it may be the write's own
// first attempt that the server saw.
//
// # Zero values, time and concurrency
//
// The zero Config is the mission's default: connect 5 s, TLS handshake 5 s,
// response headers 30 s, body stall 30 s, 5 attempts with waits of ~1 s, 2 s,
// 4 s, 8 s (×[0.8, 1.2], capped at 30 s), Retry-After honoured up to 5 min,
// a breaker per host that opens after 5 consecutive failed calls (a call's
// retries count once) for 60 s, and a
// retry budget (retries add at most 20% to the calls of the last 10 s).
// Timeouts run on real time, like context deadlines; Config.Clock drives the
// backoff waits and the breakers, so tests replace it with reboundtest.Clock.
// The caller's context always wins: no wait outlives its deadline.
//
// A Transport is safe for concurrent use. Authorization, Cookie,
// Proxy-Authorization and Set-Cookie values never appear in its logs or
// errors, and URLs in them lose their query and userinfo.
package reboundhttp
