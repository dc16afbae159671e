package idempotency

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"reflect"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/rebound-go/rebound"
)

// Defaults used where a Config field is left at its zero value.
const (
	DefaultTTL              = 24 * time.Hour   // Config.TTL; the draft's suggestion
	DefaultLockTimeout      = 5 * time.Minute  // Config.LockTimeout
	DefaultMaxBodyBytes     = 1 << 20          // Config.MaxBodyBytes, 1 MiB
	DefaultMaxResponseBytes = 1 << 20          // Config.MaxResponseBytes, 1 MiB
	DefaultPruneInterval    = 10 * time.Minute // Config.PruneInterval
)

// timeoutHandlerType is the dynamic type of http.TimeoutHandler's handler,
// compared by identity (not by name) to refuse it inside the middleware.
var timeoutHandlerType = reflect.TypeOf(http.TimeoutHandler(http.NotFoundHandler(), time.Second, ""))

// DefaultMethods are the methods that require a key when Config.Methods is nil.
var DefaultMethods = []string{http.MethodPost, http.MethodPatch}

// DefaultStoredHeaders are the response headers kept with a stored response
// when Config.StoredHeaders is nil. Everything else the handler set is sent
// to the first client but not replayed.
var DefaultStoredHeaders = []string{
	"Content-Type", "Content-Encoding", "Content-Language", "Content-Location",
	"Location", "ETag", "Last-Modified", "Link",
}

// neverStored lists headers that are never stored or replayed, even when
// Config.StoredHeaders names them: they carry credentials or sessions that
// must not outlive the first response.
var neverStored = map[string]bool{
	"Set-Cookie": true, "Set-Cookie2": true, "Cookie": true,
	"Authorization": true, "Proxy-Authorization": true,
	"Authentication-Info": true, "Proxy-Authentication-Info": true,
}

// Config configures a Middleware. The zero value of every field means the
// documented default; a negative TTL, LockTimeout, MaxKeyLength,
// MaxBodyBytes or MaxResponseBytes is a *rebound.ConfigError from New (none
// of them has a safe "none"), and a negative PruneInterval turns pruning off.
type Config struct {
	// Methods that take part in deduplication; requests with other methods
	// pass through untouched even if they carry a key. Nil means
	// DefaultMethods (POST and PATCH).
	Methods []string
	// Optional makes the key optional: a request without one passes
	// through to the handler without deduplication. By default a missing
	// key is answered with 400 Bad Request.
	Optional bool
	// Principal returns the scope a key belongs to, so that one client can
	// never see another's stored response. Real servers should return the
	// authenticated user or API client ID; the result is stored as is. It
	// runs before the handler, so authentication middleware must wrap this
	// one, not the other way round.
	//
	// Nil means CredentialScope(DefaultCredentialHeaders...): keys are
	// scoped by a SHA-256 hash of the request's Authorization, Cookie and
	// API-key headers, and requests without any share one anonymous scope
	// (CredentialScope says why, and when to do better). To share one
	// scope among all clients, say so: set it to SharedScope.
	Principal func(*http.Request) string
	// TTL is how long a completed response is kept and replayed. Zero
	// means DefaultTTL (24 h), as the draft suggests; negative is an error.
	TTL time.Duration
	// LockTimeout bounds how long a key stays in flight: after it a new
	// request with the key may run the handler again, so a crashed process
	// cannot wedge a key forever. Keep it above the server's longest
	// handler time (WriteTimeout): a handler that outlives it may run
	// twice. Zero means DefaultLockTimeout (5 min); negative is an error.
	LockTimeout time.Duration
	// MaxKeyLength is the longest key accepted; zero means
	// DefaultMaxKeyLength (255), negative is an error. Longer keys get 400.
	MaxKeyLength int
	// MaxBodyBytes bounds the request body that is read for the
	// fingerprint; larger bodies get 413. Zero means DefaultMaxBodyBytes
	// (1 MiB); negative is an error.
	MaxBodyBytes int64
	// MaxResponseBytes bounds the response body that is stored. A larger
	// response is still delivered in full to the first client, but not
	// stored: the key is marked "processed, not stored" and a retry gets
	// 409 with problem type ProblemNotStored instead of running the
	// handler a second time. Zero means DefaultMaxResponseBytes (1 MiB);
	// negative is an error.
	MaxResponseBytes int64
	// StoredHeaders names the response headers stored and replayed. Nil
	// means DefaultStoredHeaders. Set-Cookie, Authorization and the other
	// credential headers are never stored, whatever this says.
	StoredHeaders []string
	// StoreStatus decides from the status whether a response is stored. Nil
	// means every status below 500: a 5xx releases the key so that the
	// client's retry runs the handler again. That is right only if the
	// handler answers 5xx when it made no change (or undid it); a handler
	// that fails after its side effect must answer 2xx or 4xx, or this
	// func must store that 5xx, or the retry repeats the effect.
	StoreStatus func(status int) bool
	// Clock is the time source for expiry and lock timeouts; nil means the
	// system clock. Tests pass a fake (reboundtest.Clock).
	Clock rebound.Clock
	// PruneInterval is how often, at most, a request also prunes expired
	// records from the store (inline, no goroutine). Zero means
	// DefaultPruneInterval (10 min); negative disables it (call Prune).
	PruneInterval time.Duration
	// Logger receives store failures; nil discards them. Log records never
	// include keys, header values or bodies.
	Logger *slog.Logger
}

// Middleware deduplicates requests by Idempotency-Key. Create it with New;
// it is safe for concurrent use.
type Middleware struct {
	store         Store
	cfg           Config
	clock         rebound.Clock
	methods       map[string]bool
	keep          []string
	lastPruneNano atomic.Int64
}

// New returns a Middleware that keeps its records in store, or a
// *rebound.ConfigError when store is nil (a middleware that cannot remember
// would let every retry run the handler again) or a field of cfg is invalid.
func New(store Store, cfg Config) (*Middleware, error) {
	if err := cfg.validate(store); err != nil {
		return nil, err
	}
	if cfg.Methods == nil {
		cfg.Methods = DefaultMethods
	}
	if cfg.Principal == nil {
		cfg.Principal = defaultScope
	}
	if cfg.TTL == 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.LockTimeout == 0 {
		cfg.LockTimeout = DefaultLockTimeout
	}
	if cfg.MaxKeyLength == 0 {
		cfg.MaxKeyLength = DefaultMaxKeyLength
	}
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.MaxResponseBytes == 0 {
		cfg.MaxResponseBytes = DefaultMaxResponseBytes
	}
	if cfg.StoredHeaders == nil {
		cfg.StoredHeaders = DefaultStoredHeaders
	}
	if cfg.StoreStatus == nil {
		cfg.StoreStatus = func(status int) bool { return status < 500 }
	}
	if cfg.PruneInterval == 0 {
		cfg.PruneInterval = DefaultPruneInterval
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	m := &Middleware{store: store, cfg: cfg, clock: cfg.Clock, methods: make(map[string]bool)}
	if m.clock == nil {
		m.clock = rebound.SystemClock{}
	}
	for _, meth := range cfg.Methods {
		m.methods[meth] = true
	}
	for _, h := range cfg.StoredHeaders {
		h = http.CanonicalHeaderKey(h)
		if !neverStored[h] {
			m.keep = append(m.keep, h)
		}
	}
	return m, nil
}

// validate reports what New refuses, as a *rebound.ConfigError.
func (c *Config) validate(store Store) error {
	bad := func(field, reason string) error {
		return &rebound.ConfigError{Field: "idempotency." + field, Reason: reason}
	}
	switch {
	case store == nil:
		return bad("New store", "nil")
	case c.TTL < 0:
		return bad("Config.TTL", "negative")
	case c.LockTimeout < 0:
		return bad("Config.LockTimeout", "negative")
	case c.MaxKeyLength < 0:
		return bad("Config.MaxKeyLength", "negative")
	case c.MaxBodyBytes < 0:
		return bad("Config.MaxBodyBytes", "negative")
	case c.MaxResponseBytes < 0:
		return bad("Config.MaxResponseBytes", "negative")
	}
	return nil
}

// Prune deletes expired records and timed-out in-flight records from the
// store, using the configured clock, and returns how many it deleted.
func (m *Middleware) Prune(ctx context.Context) (int64, error) {
	return m.store.Prune(ctx, m.clock.Now())
}

// Handler wraps next: it is the func(http.Handler) http.Handler that
// routers' Use methods expect. It panics, when the server is wired rather
// than on a request, if m was not made by New (a zero Middleware would pass
// every request through without deduplicating it), or if next is an
// http.TimeoutHandler. These are the package's only panics, kept because
// that signature has no error to return, as http.ServeMux.Handle panics on
// a nil handler: a wiring mistake shows at startup, never mid-request.
// Everything a Config can get wrong is an error from New.
//
// http.TimeoutHandler must wrap the middleware, never sit inside it:
// inside, its 503 at the deadline would release the key while the handler
// it abandoned runs on, and the client's retry would run the handler a
// second time. Outside, the client gets the 503, the middleware stores the
// handler's answer when it returns, and the retry is replayed. Handler
// detects only a TimeoutHandler passed to it directly; one deeper inside
// next (in a router, say) cannot be seen, so keep it outside.
func (m *Middleware) Handler(next http.Handler) http.Handler {
	if m == nil || m.store == nil {
		panic("idempotency: Middleware not created with New")
	}
	if next != nil && reflect.TypeOf(next) == timeoutHandlerType {
		panic("idempotency: http.TimeoutHandler inside the middleware would release keys of handlers still running; wrap the middleware with it instead")
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.serve(w, r, next)
	})
}

func (m *Middleware) serve(w http.ResponseWriter, r *http.Request, next http.Handler) {
	if !m.methods[r.Method] {
		next.ServeHTTP(w, r)
		return
	}
	values := r.Header.Values(HeaderKey)
	if len(values) == 0 {
		if m.cfg.Optional {
			next.ServeHTTP(w, r)
			return
		}
		writeProblem(w, problemMissing, "")
		return
	}
	if len(values) > 1 { // two keys: ambiguous, never guess
		writeProblem(w, problemInvalid, "")
		return
	}
	key, err := ParseKey(values[0], m.cfg.MaxKeyLength)
	switch {
	case errors.Is(err, ErrKeyTooLong):
		writeProblem(w, problemTooLong, "")
		return
	case err != nil:
		writeProblem(w, problemInvalid, "")
		return
	}

	fp, ok := m.fingerprint(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	now := m.clock.Now()
	m.maybePrune(ctx, now)
	scope := m.cfg.Principal(r)
	token := rand.Text()
	rec, err := m.store.Claim(ctx, ClaimRequest{
		Scope: scope, Key: key, Fingerprint: fp, Token: token, Now: now,
		LockedUntil: now.Add(m.cfg.LockTimeout), ExpiresAt: now.Add(m.cfg.TTL),
	})
	if errors.Is(err, ErrStoreFull) {
		m.cfg.Logger.WarnContext(ctx, "idempotency: store full of requests in flight; answered 503")
		writeProblem(w, problemStoreFull, retryAfterStoreFailure)
		return
	}
	if err != nil {
		// Fail closed: running the handler without the check could
		// repeat a non-idempotent effect. The client retries later.
		m.cfg.Logger.ErrorContext(ctx, "idempotency: claim failed", "err", err)
		writeProblem(w, problemStore, retryAfterStoreFailure)
		return
	}
	switch {
	case rec.State != Claimed && rec.Fingerprint != fp:
		writeProblem(w, problemReused, "")
	case rec.State == InFlight:
		writeProblem(w, problemInFlight, retryAfterInFlight)
	case rec.State == Completed && rec.Response == nil:
		writeProblem(w, problemNotStored, "")
	case rec.State == Completed:
		replay(w, rec.Response)
	default:
		m.run(w, r, next, scope, key, token)
	}
}

// fingerprint reads the body (bounded), puts it back for the handler and
// returns the hash of method, path+query and body. On failure it has
// written the error response.
func (m *Middleware) fingerprint(w http.ResponseWriter, r *http.Request) (string, bool) {
	var body []byte
	if r.Body != nil && r.Body != http.NoBody {
		if r.ContentLength > m.cfg.MaxBodyBytes {
			writeProblem(w, problemBodyTooLarge, "")
			return "", false
		}
		var err error
		body, err = io.ReadAll(io.LimitReader(r.Body, m.cfg.MaxBodyBytes+1))
		var tooLarge *http.MaxBytesError
		switch {
		case int64(len(body)) > m.cfg.MaxBodyBytes || errors.As(err, &tooLarge):
			writeProblem(w, problemBodyTooLarge, "")
			return "", false
		case err != nil:
			writeProblem(w, Problem{"about:blank", "Bad Request", http.StatusBadRequest, "The request body could not be read."}, "")
			return "", false
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
	}
	bodySum := sha256.Sum256(body)
	h := sha256.New()
	io.WriteString(h, r.Method)
	h.Write([]byte{0})
	io.WriteString(h, r.URL.RequestURI())
	h.Write([]byte{0})
	h.Write(bodySum[:])
	return hex.EncodeToString(h.Sum(nil)), true
}

func (m *Middleware) maybePrune(ctx context.Context, now time.Time) {
	if m.cfg.PruneInterval < 0 {
		return
	}
	last := m.lastPruneNano.Load()
	if last != 0 && now.Sub(time.Unix(0, last)) < m.cfg.PruneInterval {
		return
	}
	if !m.lastPruneNano.CompareAndSwap(last, now.UnixNano()) {
		return // another request is pruning
	}
	if _, err := m.store.Prune(ctx, now); err != nil {
		m.cfg.Logger.WarnContext(ctx, "idempotency: prune failed", "err", err)
	}
}

// run executes the handler for a claimed key and stores or releases it.
//
// The rule: a key is released (a retry runs the handler again) only when
// the handler cannot have finished its work: it answered a status that
// Config.StoreStatus refuses (5xx by default), or it panicked before
// writing anything. A handler that returned normally has its response, an
// implicit 200 included, stored whatever its client's context says: a
// client that went away is exactly the one that will retry. A handler that
// panicked after writing a storable status is recorded as "processed, not
// stored", since its client got a cut response that cannot be replayed.
func (m *Middleware) run(w http.ResponseWriter, r *http.Request, next http.Handler, scope, key, token string) {
	// Store writes after the handler must happen even if the client went
	// away: that is exactly when the retry will need the stored response.
	bg, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 10*time.Second)
	defer cancel()
	rw := &recorder{w: w, limit: m.cfg.MaxResponseBytes}
	finished := false
	defer func() {
		if finished {
			return
		}
		// The handler panicked (or called runtime.Goexit); the panic goes
		// on to net/http after this.
		if !rw.wrote || !m.cfg.StoreStatus(rw.status) {
			m.release(bg, scope, key, token)
			return
		}
		m.complete(bg, scope, key, token, nil)
	}()
	next.ServeHTTP(rw, r)
	finished = true

	if !rw.wrote {
		rw.status = http.StatusOK
		rw.header = w.Header()
	}
	if !m.cfg.StoreStatus(rw.status) {
		m.release(bg, scope, key, token)
		return
	}
	var resp *Response
	if !rw.overflow {
		resp = &Response{Status: rw.status, Header: m.kept(rw.header), Body: rw.body.Bytes()}
	}
	m.complete(bg, scope, key, token, resp)
}

// complete stores resp for a key whose handler has done its work. It never
// releases the key: a retry would run the handler a second time. A failed
// write is tried once more (a busy database often recovers at once); then
// it records "processed, not stored" (a smaller write, and the retry gets
// ProblemNotStored instead of a replay); if even that fails the key stays
// in flight until Config.LockTimeout, and retries get 409 meanwhile.
func (m *Middleware) complete(ctx context.Context, scope, key, token string, resp *Response) {
	exp := m.clock.Now().Add(m.cfg.TTL)
	err := m.store.Complete(ctx, scope, key, token, resp, exp)
	if err != nil && !errors.Is(err, ErrNotOwner) {
		m.cfg.Logger.WarnContext(ctx, "idempotency: storing the response failed; trying again", "err", err)
		err = m.store.Complete(ctx, scope, key, token, resp, exp)
	}
	if err != nil && resp != nil && !errors.Is(err, ErrNotOwner) {
		m.cfg.Logger.ErrorContext(ctx, "idempotency: storing the response failed; recording the key as processed without it", "err", err)
		err = m.store.Complete(ctx, scope, key, token, nil, exp)
	}
	switch {
	case errors.Is(err, ErrNotOwner):
		m.cfg.Logger.WarnContext(ctx, "idempotency: handler outlived the lock timeout; response not stored")
	case err != nil:
		m.cfg.Logger.ErrorContext(ctx, "idempotency: recording a processed key failed; it stays in flight until the lock timeout", "err", err)
	}
}

func (m *Middleware) release(ctx context.Context, scope, key, token string) {
	if err := m.store.Release(ctx, scope, key, token); err != nil {
		m.cfg.Logger.ErrorContext(ctx, "idempotency: releasing a key failed; it stays locked until the lock timeout", "err", err)
	}
}

// kept returns the stored subset of h.
func (m *Middleware) kept(h http.Header) http.Header {
	out := make(http.Header, len(m.keep))
	for _, name := range m.keep {
		if v, ok := h[name]; ok {
			out[name] = append([]string(nil), v...)
		}
	}
	return out
}

// replay writes a stored response, marked with HeaderReplayed.
func replay(w http.ResponseWriter, resp *Response) {
	h := w.Header()
	for name, v := range resp.Header {
		h[name] = v
	}
	h.Set(HeaderReplayed, "true")
	h.Set("Content-Length", strconv.Itoa(len(resp.Body)))
	w.WriteHeader(resp.Status)
	_, _ = w.Write(resp.Body)
}

// recorder passes the response through to the client while keeping a copy
// of the status, the headers as they were when the status was written, and
// the body up to limit.
type recorder struct {
	w        http.ResponseWriter
	limit    int64
	wrote    bool
	status   int
	header   http.Header
	body     bytes.Buffer
	overflow bool
}

func (rw *recorder) Header() http.Header { return rw.w.Header() }

func (rw *recorder) WriteHeader(code int) {
	if rw.wrote {
		rw.w.WriteHeader(code) // let net/http report the superfluous call
		return
	}
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		rw.w.WriteHeader(code) // informational: not the final response
		return
	}
	rw.wrote = true
	rw.status = code
	rw.header = rw.w.Header().Clone()
	rw.w.WriteHeader(code)
}

func (rw *recorder) Write(p []byte) (int, error) {
	if !rw.wrote {
		rw.WriteHeader(http.StatusOK)
	}
	if !rw.overflow {
		if int64(rw.body.Len()+len(p)) > rw.limit {
			rw.overflow = true
			rw.body = bytes.Buffer{} // free it: it will not be stored
		} else {
			rw.body.Write(p)
		}
	}
	return rw.w.Write(p)
}

// Flush lets streaming handlers flush through the middleware.
func (rw *recorder) Flush() {
	if !rw.wrote {
		rw.WriteHeader(http.StatusOK)
	}
	_ = http.NewResponseController(rw.w).Flush()
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (rw *recorder) Unwrap() http.ResponseWriter { return rw.w }
