// Package idempotency is net/http server middleware that makes POST and
// PATCH safe to retry: it deduplicates requests by their Idempotency-Key
// header, following the IETF draft "The Idempotency-Key HTTP Header Field"
// (draft-ietf-httpapi-idempotency-key-header).
//
// # The model
//
// A client sends a unique key with a non-idempotent request and sends the
// same key again when it retries. For each key the middleware keeps one
// record in a Store:
//
//   - What is stored: the request's fingerprint (SHA-256 over the method,
//     the path and query, and the SHA-256 of the body) and, once the
//     handler has answered, the response: its status, the response headers
//     named in Config.StoredHeaders (never Set-Cookie, Authorization or
//     other credentials) and the body up to Config.MaxResponseBytes.
//   - Scope: a key belongs to the principal returned by Config.Principal,
//     so one client never sees another's response even if both pick the
//     same key. Real servers should return the authenticated user. The
//     default scopes by a SHA-256 hash of the credentials the request
//     carries (CredentialScope); requests without credentials share one
//     anonymous scope. One scope for all is an explicit choice:
//     SharedScope.
//   - Expiry: a completed record is replayed for Config.TTL (24 h by
//     default) and forgotten afterwards: a request with an expired key
//     runs the handler again. Expired records are pruned inline every
//     Config.PruneInterval, or by Middleware.Prune.
//
// # What a request gets
//
//   - first request with a key: the handler runs; its response is stored.
//   - the same key and fingerprint again: the stored response, replayed
//     without running the handler, with the header Idempotent-Replayed: true.
//   - the same key while the first request still runs: 409 Conflict with
//     Retry-After: 1.
//   - the same key with a different fingerprint: 422 Unprocessable Content.
//   - no key on a method that requires one (Config.Methods, default POST
//     and PATCH): 400, unless Config.Optional lets it pass through; a key
//     that is not a valid Structured Field String, or longer than
//     Config.MaxKeyLength (255): 400.
//   - a body larger than Config.MaxBodyBytes (1 MiB): 413.
//   - the same key after a response too large to store: 409 with problem
//     type ProblemNotStored; the handler is not run a second time.
//   - the store failing: 503 with Retry-After, and the handler is not run
//     (fail closed: running it unchecked could repeat an effect).
//   - a bounded store (MemoryStore) full of requests still in flight: 503
//     with Retry-After and problem type ProblemStoreFull; the handler is
//     not run.
//
// Errors are RFC 9457 application/problem+json bodies (type, title, status,
// detail) that never echo the key or any header.
//
// # Concurrency and failure guarantees
//
// Claiming a key is atomic in every Store (across processes for SQLStore):
// of many concurrent requests with one key exactly one runs the handler.
//
// Once the handler has run, its key is released (a retry runs the handler
// again) only in two cases, both of which say "nothing was done":
//
//   - it answered 5xx (see Config.StoreStatus). A 5xx is the handler's
//     promise that it made no change, or undid it. A handler that has
//     done its work and then fails must not answer 5xx: answer 2xx or
//     4xx, or set StoreStatus to store that 5xx too.
//   - it panicked before writing anything. A panic after a change is made
//     is the same broken promise as such a 5xx.
//
// Every other outcome is kept. A handler that returned normally has its
// response stored, the implicit 200 of a handler that wrote nothing
// included, even if its client went away meanwhile: that client is the
// one that will retry. A handler that notices its client is gone and gives
// up without changing anything answers 503 (or panics with
// http.ErrAbortHandler) so that the retry runs it. A handler that panics
// after writing a storable status is recorded as processed without a
// response (ProblemNotStored). A response the store cannot take (at a
// second try) is recorded the same way; if the store takes nothing at all, the key stays
// in flight until Config.LockTimeout.
//
// A key left in flight by a crashed process becomes free after
// Config.LockTimeout (5 min). A handler that runs longer than LockTimeout
// may therefore run twice; keep LockTimeout above the server's
// WriteTimeout. For the same reason http.TimeoutHandler must wrap the
// middleware, not sit inside it: inside, its 503 would release the key of
// a handler that runs on (Middleware.Handler refuses a TimeoutHandler
// passed to it directly).
//
// The middleware reads the request body once to fingerprint it and gives
// the handler an identical copy. Response bytes go to the client as the
// handler writes them; the copy for the store is taken on the way.
package idempotency
