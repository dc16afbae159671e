package idempotency

import (
	"errors"
	"strings"
)

// HeaderKey is the request header that carries the idempotency key.
const HeaderKey = "Idempotency-Key"

// HeaderReplayed is set to "true" on a response that was replayed from the
// store instead of being produced by the handler.
const HeaderReplayed = "Idempotent-Replayed"

// DefaultMaxKeyLength is the longest key accepted when Config.MaxKeyLength is 0.
const DefaultMaxKeyLength = 255

// Errors returned by ParseKey. They never contain the key itself.
var (
	// ErrKeyEmpty: the value is blank (or only spaces and tabs), or the
	// quoted string is empty.
	ErrKeyEmpty = errors.New("idempotency: key is empty")
	// ErrKeyTooLong: the key is longer than maxLen after unquoting.
	ErrKeyTooLong = errors.New("idempotency: key is too long")
	// ErrKeySyntax: the value is neither a well-formed quoted string nor
	// a bare run of the allowed characters, or it has parameters.
	ErrKeySyntax = errors.New("idempotency: key is not a valid Structured Field String")
)

// ParseKey parses the value of an Idempotency-Key header field and returns
// the key. The draft defines the field as a Structured Field String
// (RFC 8941): printable ASCII between double quotes, where only \" and \\
// are escapes, for example "8e03978e-40d5-43e8-bc93-6894a57f9324". Because
// many clients send the key unquoted, a bare value of visible ASCII
// characters (no space, no '"', no '\\', no ',') is also accepted as is.
// Surrounding spaces and tabs are ignored. Structured Field parameters
// (";a=1" after the string) are rejected rather than silently ignored, so
// two different header values never map to the same key.
//
// maxLen bounds the length of the key (after unquoting); 0 means
// DefaultMaxKeyLength. ParseKey never panics, whatever the input.
func ParseKey(value string, maxLen int) (string, error) {
	if maxLen <= 0 {
		maxLen = DefaultMaxKeyLength
	}
	v := strings.Trim(value, " \t")
	if v == "" {
		return "", ErrKeyEmpty
	}
	if v[0] != '"' {
		return parseBare(v, maxLen)
	}
	// Quoted form: walk the bytes once; stop early once the key is too long
	// so a huge header costs no more than maxLen work to reject.
	var b strings.Builder
	for i := 1; i < len(v); i++ {
		c := v[i]
		switch {
		case c == '\\':
			i++
			if i >= len(v) || (v[i] != '"' && v[i] != '\\') {
				return "", ErrKeySyntax
			}
			b.WriteByte(v[i])
		case c == '"':
			if i != len(v)-1 {
				return "", ErrKeySyntax // parameters or a second value follow
			}
			if b.Len() == 0 {
				return "", ErrKeyEmpty
			}
			return b.String(), nil
		case c < 0x20 || c > 0x7e:
			return "", ErrKeySyntax
		default:
			b.WriteByte(c)
		}
		if b.Len() > maxLen {
			return "", ErrKeyTooLong
		}
	}
	return "", ErrKeySyntax // no closing quote
}

func parseBare(v string, maxLen int) (string, error) {
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c <= 0x20 || c > 0x7e || c == '"' || c == '\\' || c == ',' {
			return "", ErrKeySyntax
		}
	}
	if len(v) > maxLen {
		return "", ErrKeyTooLong
	}
	return v, nil
}

// FormatKey returns key as a Structured Field String, the form a client
// should send in the Idempotency-Key header. It reports false if key is
// empty or holds a byte outside printable ASCII.
func FormatKey(key string) (string, bool) {
	if key == "" {
		return "", false
	}
	var b strings.Builder
	b.Grow(len(key) + 2)
	b.WriteByte('"')
	for i := 0; i < len(key); i++ {
		c := key[i]
		if c < 0x20 || c > 0x7e {
			return "", false
		}
		if c == '"' || c == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(c)
	}
	b.WriteByte('"')
	return b.String(), true
}
