package reboundhttp

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/rebound-go/rebound"
)

// ErrInvalidRequest is matched (errors.Is) by the error of a request that
// net/http would refuse to send: a header name that is not a token, a header
// value with a control character (CR, LF, NUL, ...), a method that is not a
// token, a URL without a host. Nothing was sent; the error is permanent and
// never counts against the host's breaker, since the fault is the caller's.
var ErrInvalidRequest = errors.New("reboundhttp: invalid request")

// invalidRequestError says what is wrong with a request that was not sent.
// It never holds a header value, which may be a secret.
type invalidRequestError struct{ method, url, why string }

func (e *invalidRequestError) Error() string {
	return "reboundhttp: " + e.method + " " + e.url + " not sent: " + e.why
}

func (e *invalidRequestError) Is(target error) bool { return target == ErrInvalidRequest }

func (e *invalidRequestError) Class() rebound.Class {
	return rebound.Class{Kind: rebound.KindPermanent, Reason: "invalid request"}
}

// ValidateRequest returns an error matching ErrInvalidRequest when net/http
// would refuse to send req, by net/http's own rules (golang.org/x/net's
// httpguts): header names and the method are tokens, header values hold no
// control character but horizontal tab, the URL has a host. Transport calls
// it before the first attempt, so such a request is never retried; call it
// yourself to refuse bad input early. It allocates nothing for a valid
// request.
func ValidateRequest(req *http.Request) error {
	if req.URL == nil {
		return &invalidRequestError{req.Method, "(no URL)", "the request has no URL"}
	}
	if req.URL.Host == "" {
		return &invalidRequestError{req.Method, RedactURL(req.URL), "the URL has no host"}
	}
	if req.Method != "" && !validToken(req.Method) {
		return &invalidRequestError{strconv.Quote(req.Method), RedactURL(req.URL), "the method is not a valid token"}
	}
	for k, vs := range req.Header {
		if !validToken(k) {
			return &invalidRequestError{req.Method, RedactURL(req.URL), "header name " + strconv.Quote(k) + " is not a valid token"}
		}
		for _, v := range vs {
			if !ValidHeaderValue(v) {
				return &invalidRequestError{req.Method, RedactURL(req.URL), "the value of header " + k + " holds a control character (CR, LF, NUL, ...)"}
			}
		}
	}
	return nil
}

// ValidHeaderValue reports whether v may be sent as a header field value,
// by net/http's rule (RFC 9110 §5.5): no control character (below 0x20, or
// 0x7f) other than horizontal tab; bytes from 0x80 up are allowed.
func ValidHeaderValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// ValidToken reports whether s is an RFC 9110 token, as a method or a header
// name must be: one or more of the visible ASCII characters except the
// delimiters "(),/:;<=>?@[\]{}.
func ValidToken(s string) bool { return validToken(s) }

func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f || tokenDelims[c] {
			return false
		}
	}
	return true
}

var tokenDelims = [128]bool{'"': true, '(': true, ')': true, ',': true, '/': true, ':': true, ';': true,
	'<': true, '=': true, '>': true, '?': true, '@': true, '[': true, '\\': true, ']': true, '{': true, '}': true}
