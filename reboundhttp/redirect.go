package reboundhttp

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"

	"github.com/rebound-go/rebound"
)

// DefaultMaxRedirects is how many redirects in a row RedirectPolicy follows
// by default, as net/http does.
const DefaultMaxRedirects = 10

// ErrRedirect is matched (errors.Is) by the error of a redirect that the
// redirect policy refused to follow (see RedirectPolicy); the error is a
// *RedirectError.
var ErrRedirect = errors.New("reboundhttp: redirect not followed")

// RedirectPolicy decides which redirects an http.Client follows and what the
// redirected request carries: its Check method is an http.Client's
// CheckRedirect. NewClient uses Config.Redirect; so do transfer's
// DefaultClient and every client of the rebound CLI. Its zero value is the
// safe default, which refuses (with a *RedirectError, permanent, so never
// retried and never counted against a breaker) a redirect:
//
//   - that changes the method or drops the body: net/http re-sends a POST,
//     PUT, PATCH or DELETE answered 301, 302 or 303 as a GET without its
//     body, whose success would be taken for the original request's;
//     307 and 308 re-send the same method and body (rewound with
//     Request.GetBody; without GetBody net/http does not follow them and
//     returns the 3xx answer itself);
//   - beyond DefaultMaxRedirects in a row (a loop);
//   - from https to http, which would send the request in clear;
//   - to a scheme other than http and https, or to a URL carrying userinfo
//     the server chose;
//   - of a request with a body to another origin: the body is the caller's
//     data, meant for the origin the caller named.
//
// A redirect it follows never carries a Referer the caller did not set
// (net/http's holds the previous URL, query and all). A GET or HEAD
// redirected to another origin (scheme, host and port; another port of
// the same host is another origin) keeps only headers that carry no
// credential and that downloads need: Accept, Accept-Encoding,
// Accept-Language, Cache-Control, If-Match, If-Modified-Since,
// If-None-Match, If-Range, If-Unmodified-Since, Range, Tus-Resumable and
// User-Agent. Every other header the caller set (Authorization, Cookie,
// X-Api-Key, ...) is dropped, where net/http drops only Authorization,
// Cookie and WWW-Authenticate.
//
// To follow redirects as net/http does, set the Client's CheckRedirect to
// nil after NewClient; to follow none, to a func that returns
// http.ErrUseLastResponse.
type RedirectPolicy struct {
	// MaxRedirects is how many redirects in a row are followed; 0 means
	// DefaultMaxRedirects (10), negative means none (every redirect is
	// refused with a *RedirectError).
	MaxRedirects int
	// AllowDowngrade follows redirects from https to http.
	AllowDowngrade bool
	// TrustCrossOrigin sends a request redirected to another origin as
	// net/http would: with its body and the caller's headers (but for
	// Authorization, Cookie and WWW-Authenticate, which net/http drops). It
	// still never sends a Referer the caller did not set.
	TrustCrossOrigin bool
}

// CheckRedirect is the zero RedirectPolicy's Check: use it as an
// http.Client's CheckRedirect to get the safe default on a client of yours.
func CheckRedirect(req *http.Request, via []*http.Request) error {
	return RedirectPolicy{}.Check(req, via)
}

// Check is an http.Client CheckRedirect func: it returns a *RedirectError
// for a redirect the policy refuses, and otherwise strips what req must not
// carry to its new destination (see RedirectPolicy).
func (p RedirectPolicy) Check(req *http.Request, via []*http.Request) error {
	if len(via) == 0 {
		return nil
	}
	first, prev := via[0], via[len(via)-1]
	refuse := func(why string) error {
		e := &RedirectError{Method: first.Method, URL: RedactURL(prev.URL), Location: RedactURL(req.URL), Reason: why}
		if e.Method == "" {
			e.Method = http.MethodGet
		}
		if req.Response != nil {
			e.StatusCode = req.Response.StatusCode
		}
		return e
	}
	max := p.MaxRedirects
	if max == 0 {
		max = DefaultMaxRedirects
	}
	switch {
	case max < 0:
		return refuse("redirects are not followed")
	case len(via) > max:
		return refuse("stopped after " + strconv.Itoa(max) + " redirects in a row; a redirect loop?")
	case methodOf(req) != methodOf(prev):
		return refuse("net/http would re-send " + methodOf(prev) + " as " + methodOf(req) + " without its body, and its answer is not the " + methodOf(prev) + "'s")
	case hasBody(prev) && !hasBody(req):
		return refuse("the body would be dropped")
	case req.URL.Scheme != "http" && req.URL.Scheme != "https":
		return refuse("scheme " + strconv.Quote(req.URL.Scheme) + " is not http or https")
	case prev.URL.Scheme == "https" && req.URL.Scheme == "http" && !p.AllowDowngrade:
		return refuse("it leads from https to http, which would send the request in clear")
	case req.URL.User != nil && (prev.URL.User == nil || req.URL.User.String() != prev.URL.User.String()):
		return refuse("the Location carries credentials")
	}
	crossOrigin := !SameOrigin(first.URL, req.URL)
	if crossOrigin && !p.TrustCrossOrigin {
		if hasBody(req) {
			return refuse("a request with a body is not sent to another origin")
		}
		for k := range req.Header {
			if !crossOriginSafe[k] {
				delete(req.Header, k)
			}
		}
	}
	if _, set := first.Header["Referer"]; !set || crossOrigin {
		// net/http's Referer is the previous URL with its query, which
		// may hold a token; a Referer the caller set stays with its origin.
		req.Header.Del("Referer")
	}
	return nil
}

// crossOriginSafe are the headers, in canonical form, that a request
// redirected to another origin keeps: none carries a credential, and
// downloads need the range and validator ones to resume.
var crossOriginSafe = map[string]bool{
	"Accept": true, "Accept-Encoding": true, "Accept-Language": true, "Cache-Control": true,
	"If-Match": true, "If-Modified-Since": true, "If-None-Match": true, "If-Range": true,
	"If-Unmodified-Since": true, "Range": true, "Tus-Resumable": true, "User-Agent": true,
}

func methodOf(r *http.Request) string {
	if r.Method == "" {
		return http.MethodGet
	}
	return r.Method
}

func hasBody(r *http.Request) bool {
	return r.Body != nil && r.Body != http.NoBody || r.ContentLength > 0
}

// SameOrigin reports whether a and b have the same origin (RFC 6454):
// scheme, host and port, the port defaulting to 80 for http and 443 for
// https. Hosts compare without regard to case.
func SameOrigin(a, b *url.URL) bool {
	if a == nil || b == nil {
		return false
	}
	return equalFold(a.Scheme, b.Scheme) && equalFold(a.Hostname(), b.Hostname()) &&
		portOf(a) == portOf(b)
}

func portOf(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	switch {
	case equalFold(u.Scheme, "http"):
		return "80"
	case equalFold(u.Scheme, "https"):
		return "443"
	}
	return ""
}

// equalFold is strings.EqualFold for ASCII, which is all a scheme or a
// host in a URL may hold once parsed.
func equalFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// RedirectError is a redirect that was not followed: refused by a
// RedirectPolicy, or a 3xx answer that came back unfollowed where a result
// was expected. It is permanent: sending the request again would meet the
// same redirect. Its URLs have no userinfo, query or fragment, so it is
// safe to log.
type RedirectError struct {
	// Method is the original request's method.
	Method string
	// URL is the URL that answered with the redirect, redacted.
	URL string
	// StatusCode is the redirect's status, e.g. 302; 0 when unknown.
	StatusCode int
	// Location is where the redirect pointed, redacted; "" when the
	// answer named no Location.
	Location string
	// Reason says why it was not followed.
	Reason string
}

// Error says which request was redirected where and why it was not
// followed: "reboundhttp: POST http://a/x: 302 redirect to https://a/x not
// followed: ...".
func (e *RedirectError) Error() string {
	s := "reboundhttp: " + e.Method + " " + e.URL + ": "
	if e.StatusCode != 0 {
		s += strconv.Itoa(e.StatusCode) + " "
	}
	s += "redirect"
	if e.Location != "" {
		s += " to " + e.Location
	}
	return s + " not followed: " + e.Reason
}

// Is reports whether target is ErrRedirect.
func (e *RedirectError) Is(target error) bool { return target == ErrRedirect }

// Class implements rebound.Classed: permanent.
func (e *RedirectError) Class() rebound.Class {
	return rebound.Class{Kind: rebound.KindPermanent, Reason: "redirect not followed"}
}

// UnfollowedRedirect returns a *RedirectError when resp, which a client
// returned for req, is not req's own answer: a 3xx (but 304 Not Modified)
// that came back unfollowed (no Location, a body net/http could not send
// again, a CheckRedirect that returned http.ErrUseLastResponse), or the
// answer to a request of another method, as a client with net/http's
// default policy returns after turning a redirected POST or PUT into a GET.
// It returns nil otherwise. Call it before taking a response for success
// when the client may not be NewClient's.
func UnfollowedRedirect(req *http.Request, resp *http.Response) error {
	last := req
	if resp.Request != nil {
		last = resp.Request
	}
	switch {
	case methodOf(last) != methodOf(req):
		return &RedirectError{Method: methodOf(req), URL: RedactURL(req.URL), Location: RedactURL(last.URL),
			Reason: "the client turned it into a " + methodOf(last) + ", whose answer is not the " + methodOf(req) + "'s"}
	case resp.StatusCode >= 300 && resp.StatusCode < 400 && resp.StatusCode != http.StatusNotModified:
		e := &RedirectError{Method: methodOf(req), URL: RedactURL(last.URL), StatusCode: resp.StatusCode,
			Reason: "the answer is a redirect, not the request's result"}
		if v := resp.Header.Get("Location"); v != "" {
			if loc, err := last.URL.Parse(v); err == nil {
				e.Location = RedactURL(loc)
			}
		}
		return e
	}
	return nil // no allocation: this runs on every success
}
