package redact

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// Printable makes s, a string a server chose (a reason phrase, a body
// snippet, a header value, a file name), safe to put on a terminal or into
// the state: each control character (C0 with TAB and LF, DEL, C1: ESC [2J,
// OSC titles, CSI), bidi control (U+061C, U+200E, U+200F, U+202A–U+202E,
// U+2066–U+2069), line or paragraph separator (U+2028, U+2029) becomes a
// visible escape (\x1b, \u202e), and so does each byte of invalid UTF-8
// (\xff). Everything else, printable ASCII and backslashes too, is kept,
// and a string with nothing to escape is returned as it is, without
// allocating.
func Printable(s string) string { return printable(s, false) }

// Text is the last guard before a message reaches a terminal, a --json
// event, a log or the state: every URL written in it (scheme://…) loses its
// userinfo, query and fragment, as URL would show it, and it is made
// Printable except that its line breaks and tabs stay (rebound's own
// multi-line messages keep their shape). Server text should have been made
// Printable where it entered the message; Text catches what a path missed.
func Text(s string) string { return printable(urlsInText(s), true) }

// unsafeRune reports whether r must not reach a terminal as it is.
func unsafeRune(r rune) bool {
	switch {
	case r < 0x20, r == 0x7f, 0x80 <= r && r <= 0x9f:
		return true
	case r == 0x061c, r == 0x200e, r == 0x200f, 0x202a <= r && r <= 0x202e, 0x2066 <= r && r <= 0x2069:
		return true
	case r == 0x2028, r == 0x2029:
		return true
	}
	return false
}

func printable(s string, keepLines bool) string {
	first := -1
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c < 0x7f {
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && n <= 1) || (unsafeRune(r) && !(keepLines && (r == '\n' || r == '\t'))) {
			first = i
			break
		}
		i += n
	}
	if first < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	b.WriteString(s[:first])
	for i := first; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n <= 1:
			writeHex(&b, `\x`, uint32(s[i]), 2)
		case keepLines && (r == '\n' || r == '\t'):
			b.WriteByte(byte(r))
		case !unsafeRune(r):
			b.WriteString(s[i : i+n])
		case r < 0x80:
			writeHex(&b, `\x`, uint32(r), 2)
		default:
			writeHex(&b, `\u`, uint32(r), 4)
		}
		i += n
	}
	return b.String()
}

func writeHex(b *strings.Builder, prefix string, v uint32, width int) {
	b.WriteString(prefix)
	h := strconv.FormatUint(uint64(v), 16)
	for range width - len(h) {
		b.WriteByte('0')
	}
	b.WriteString(h)
}

// urlsInText drops the userinfo, query and fragment of every URL in s. A URL
// starts with a scheme (a letter, then letters, digits, '+', '-', '.') and
// "://", and ends before white space, a control character, a quote, '<',
// '>', '`' or a backslash (the end of a quoted or JSON-escaped string).
func urlsInText(s string) string {
	if !strings.Contains(s, "://") {
		return s
	}
	var b strings.Builder
	last := 0
	for i := 0; ; {
		j := strings.Index(s[i:], "://")
		if j < 0 {
			break
		}
		j += i
		k := j
		for k > last && schemeByte(s[k-1]) {
			k--
		}
		for k < j && !isLetter(s[k]) {
			k++
		}
		if k == j {
			i = j + 3
			continue
		}
		e := j + 3
		for e < len(s) && !urlEnd(s[e]) {
			e++
		}
		rest := s[j+3 : e]
		ae := len(rest)
		if x := strings.IndexAny(rest, "/?#"); x >= 0 {
			ae = x
		}
		host, path := rest[:ae], rest[ae:]
		if at := strings.LastIndexByte(host, '@'); at >= 0 {
			host = host[at+1:]
		}
		if q := strings.IndexAny(path, "?#"); q >= 0 {
			path = path[:q]
		}
		b.WriteString(s[last : j+3])
		b.WriteString(host)
		b.WriteString(path)
		last, i = e, e
	}
	if last == 0 {
		return s
	}
	b.WriteString(s[last:])
	return b.String()
}

func isLetter(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }

func schemeByte(c byte) bool {
	return isLetter(c) || '0' <= c && c <= '9' || c == '+' || c == '-' || c == '.'
}

func urlEnd(c byte) bool {
	return c <= ' ' || c == 0x7f || strings.IndexByte("\"'<>`\\", c) >= 0
}
