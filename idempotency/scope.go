package idempotency

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"net/http"
)

// DefaultCredentialHeaders are the request headers whose values scope a key
// when Config.Principal is nil: the standard credential headers and the two
// most common API-key headers. Do not modify it; pass your own list to
// CredentialScope instead.
var DefaultCredentialHeaders = []string{
	"Authorization", "Proxy-Authorization", "Cookie", "X-Api-Key", "X-Auth-Token",
}

// scopePrefix marks a scope made by CredentialScope and versions its hash,
// so that it can never equal the empty anonymous scope, and a later change
// of the encoding cannot collide with records of this one.
const scopePrefix = "cred1:"

// SharedScope is a Principal that puts every request in one scope: any
// client that sends a key and the identical request (method, path, query
// and body) gets the response stored for it, whoever sent it first. Set
// Config.Principal to SharedScope only when that is what you want, for
// example behind a gateway that already gives each client its own keys.
func SharedScope(*http.Request) string { return "" }

// CredentialScope returns a Principal that scopes keys by the credentials a
// request carries: the SHA-256 of the values of the named headers (names
// are case-insensitive). Two requests share a scope only if they carry the
// same values in every one of these headers. Only the hash is kept in the
// store, never a credential.
//
// A request that carries none of the headers is anonymous: all anonymous
// requests share the empty scope. That is deliberate. An anonymous request
// proves nothing about who sends it, so nothing better than the shared
// scope exists for it: a client address is shared behind NAT and proxies
// and changes on a roaming client, which would make its retries run the
// handler again. The stored response is replayed only to a request with
// the same key and the identical method, path, query and body, so the key
// (a random UUID, as the IETF draft asks) is what guards it; a server whose
// anonymous responses must stay private must authenticate those requests.
//
// Credentials that change between a request and its retry (a refreshed
// OAuth token, a session cookie the server rotates, cookies a browser
// updates) give the retry another scope, and it runs the handler again. A
// server with such credentials should set Config.Principal to the
// authenticated user or API client instead. Note too that an unsalted
// SHA-256 of a weak password (Basic authentication) can be guessed by
// whoever reads the store; the same remedy applies.
func CredentialScope(headers ...string) func(*http.Request) string {
	names := make([]string, len(headers))
	for i, h := range headers {
		names[i] = http.CanonicalHeaderKey(h)
	}
	return func(r *http.Request) string { return credentialScope(r.Header, names) }
}

// defaultScope is CredentialScope(DefaultCredentialHeaders...), built once.
var defaultScope = CredentialScope(DefaultCredentialHeaders...)

// credentialScope hashes the values of the canonical header names in h.
// The encoding is unambiguous (every name, count and value is
// length-prefixed), so two different sets of values never hash alike
// except by a SHA-256 collision.
func credentialScope(h http.Header, names []string) string {
	present := false
	for _, name := range names {
		if len(h[name]) > 0 {
			present = true
			break
		}
	}
	if !present {
		return ""
	}
	sum := sha256.New()
	var n [8]byte
	put := func(s string) {
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		sum.Write(n[:])
		sum.Write([]byte(s))
	}
	put("rebound idempotency scope")
	for _, name := range names {
		values := h[name]
		put(name)
		binary.BigEndian.PutUint64(n[:], uint64(len(values)))
		sum.Write(n[:])
		for _, v := range values {
			put(v)
		}
	}
	return scopePrefix + hex.EncodeToString(sum.Sum(nil))
}
