package redact

import (
	"net/url"
	"slices"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// Scrub replaces with Mask every occurrence in text of a secret of s, in
// each form a server that echoes a request is known to use:
//
//   - raw;
//   - percent-encoded, any or all of its bytes, hex digits in either case
//     (url.QueryEscape, url.PathEscape, a gateway's own encoder), with '+'
//     read as a space or as itself;
//   - percent-encoded twice (%252B: a URL carried in another URL's query);
//   - JSON string escapes (\u002b, \/, \", \\, surrogate pairs), and JSON
//     escapes of a percent-encoded form;
//   - HTML character references (&amp;, &#43;, &#x2B;), and those of a
//     percent-encoded form.
//
// Not covered, and why: base64 or other transformations of a secret
// embedded in text (their alignment depends on what precedes them, and no
// server echoes a request so; a Basic credential's decoded user:password is
// added by AddHeader instead); secrets shorter than MinSecret; secrets in a
// URL's path (URL shows the path; put credentials in a header or the query).
//
// The result never has a secret outside a Mask in any of these forms, also
// where masking joins text around a Mask into a new escape: Scrub repeats
// until nothing more is found.
func (s *Secrets) Scrub(text string) string {
	if s.Len() == 0 {
		return text
	}
	// A second pass finds what the first made by joining text around a
	// Mask; a secret made of Masks' letters could go on forever, so the
	// passes are bounded (Add refuses a secret inside two Masks).
	for range 8 {
		out, changed := s.scrubOnce(text)
		if !changed {
			break
		}
		text = out
	}
	return text
}

// decoder reads one escape form: it returns the decoded text with, for each
// of its bytes, the span of the input it came from.
type decoder func(string) (view, bool)

// chains are the decodings Scrub searches, each a sequence of decoders.
var chains = [][]decoder{
	{percentPlus},
	{percent},
	{percentPlus, percentPlus},
	{jsonString},
	{jsonLoose},
	{jsonString, percentPlus},
	{jsonString, percent},
	{htmlRefs},
	{htmlRefs, percentPlus},
	{htmlRefs, percent},
}

// view is a decoded text; its byte i came from the input's bytes
// [lo[i], hi[i]).
type view struct {
	s      string
	lo, hi []int
}

// compose maps a view of a view back to the first view's input.
func (outer view) compose(inner view) view {
	for i := range outer.lo {
		outer.lo[i], outer.hi[i] = inner.lo[outer.lo[i]], inner.hi[outer.hi[i]-1]
	}
	return outer
}

func (s *Secrets) scrubOnce(text string) (string, bool) {
	var spans [][2]int
	// Each view is searched for the secrets and their usual percent-encoded
	// forms too (once and twice): decoding a view again would read a '%'
	// just before an encoded secret ("%" + "41%2B…") as part of an escape
	// and miss it.
	targets := make([]string, 0, len(s.vals))
	for _, sec := range s.vals {
		// Twice-encoded forms too: a '%' just before one shifts the
		// once-decoded view as well ("%" + "00000%2B" for "00000 ").
		q, p := url.QueryEscape(sec), url.PathEscape(sec)
		qq, pq := url.QueryEscape(q), url.QueryEscape(p)
		for _, t := range []string{sec, q, p, lowerHex(q), lowerHex(p), qq, pq, lowerHex(qq), lowerHex(pq)} {
			if !slices.Contains(targets, t) {
				targets = append(targets, t)
			}
		}
	}
	find := func(v string, span func(a, b int) [2]int) {
		for _, sec := range targets {
			for off := 0; off < len(v); {
				i := strings.Index(v[off:], sec)
				if i < 0 {
					break
				}
				a := off + i
				spans = append(spans, span(a, a+len(sec)))
				off = a + 1 // overlapping occurrences each count
			}
		}
	}
	find(text, func(a, b int) [2]int { return [2]int{a, b} })
	for _, chain := range chains {
		var v view
		ok := true
		for i, dec := range chain {
			in := text
			if i > 0 {
				in = v.s
			}
			next, changed := dec(in)
			if !changed {
				// Nothing to decode: another (shorter) chain reads the same.
				ok = false
				break
			}
			if i > 0 {
				next = next.compose(v)
			}
			v = next
		}
		if ok {
			find(v.s, func(a, b int) [2]int { return [2]int{v.lo[a], v.hi[b-1]} })
		}
	}
	if len(spans) == 0 {
		return text, false
	}
	slices.SortFunc(spans, func(x, y [2]int) int { return x[0] - y[0] })
	var b strings.Builder
	last := 0
	for i := 0; i < len(spans); {
		start, end := spans[i][0], spans[i][1]
		for i++; i < len(spans) && spans[i][0] <= end; i++ {
			end = max(end, spans[i][1])
		}
		b.WriteString(text[last:start])
		b.WriteString(Mask)
		last = end
	}
	b.WriteString(text[last:])
	return b.String(), true
}

// builder accumulates a view.
type builder struct {
	b      []byte
	lo, hi []int
}

func (w *builder) add(p []byte, lo, hi int) {
	for range p {
		w.lo = append(w.lo, lo)
		w.hi = append(w.hi, hi)
	}
	w.b = append(w.b, p...)
}

func (w *builder) view() view { return view{string(w.b), w.lo, w.hi} }

// lowerHex writes the hex digits of s's percent escapes in lower case.
func lowerHex(s string) string {
	if !strings.ContainsRune(s, '%') {
		return s
	}
	b := []byte(s)
	for i := 0; i+2 < len(b); i++ {
		if b[i] == '%' {
			b[i+1], b[i+2] = lowerByte(b[i+1]), lowerByte(b[i+2])
		}
	}
	return string(b)
}

func lowerByte(c byte) byte {
	if 'A' <= c && c <= 'F' {
		return c + 'a' - 'A'
	}
	return c
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

func percentPlus(s string) (view, bool) { return percentDecode(s, true) }
func percent(s string) (view, bool)     { return percentDecode(s, false) }

// percentDecode reads %XX escapes (and '+' as a space when plus is set);
// anything else, a malformed escape too, stands for itself.
func percentDecode(s string, plus bool) (view, bool) {
	if !strings.ContainsRune(s, '%') && (!plus || !strings.ContainsRune(s, '+')) {
		return view{}, false
	}
	var w builder
	for i := 0; i < len(s); {
		if s[i] == '%' && i+2 < len(s) {
			h, ok1 := unhex(s[i+1])
			l, ok2 := unhex(s[i+2])
			if ok1 && ok2 {
				w.add([]byte{h<<4 | l}, i, i+3)
				i += 3
				continue
			}
		}
		c := s[i]
		if plus && c == '+' {
			c = ' '
		}
		w.add([]byte{c}, i, i+1)
		i++
	}
	return w.view(), true
}

// hex4 reads four hex digits.
func hex4(s string) (rune, bool) {
	if len(s) < 4 {
		return 0, false
	}
	var r rune
	for i := range 4 {
		d, ok := unhex(s[i])
		if !ok {
			return 0, false
		}
		r = r<<4 | rune(d)
	}
	return r, true
}

// jsonString reads the escapes of a JSON string.
func jsonString(s string) (view, bool) { return jsonDecode(s, true) }

// jsonLoose is jsonString without the escape \\: a backslash just before an
// escaped secret ("\\" + "\u0041…") would otherwise pair with the secret's
// first backslash and hide it.
func jsonLoose(s string) (view, bool) { return jsonDecode(s, false) }

func jsonDecode(s string, backslash bool) (view, bool) {
	if !strings.ContainsRune(s, '\\') {
		return view{}, false
	}
	var w builder
	var buf [utf8.UTFMax]byte
	for i := 0; i < len(s); {
		if s[i] == '\\' && i+1 < len(s) {
			switch c := s[i+1]; c {
			case '"', '\\', '/':
				if c == '\\' && !backslash {
					break
				}
				w.add([]byte{c}, i, i+2)
				i += 2
				continue
			case 'b', 'f', 'n', 'r', 't':
				w.add([]byte{"\b\f\n\r\t"[strings.IndexByte("bfnrt", c)]}, i, i+2)
				i += 2
				continue
			case 'u':
				if r, ok := hex4(s[i+2:]); ok {
					n := 6
					if utf16.IsSurrogate(r) && i+12 <= len(s) && s[i+6] == '\\' && s[i+7] == 'u' {
						if r2, ok := hex4(s[i+8:]); ok {
							if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
								r, n = d, 12
							}
						}
					}
					if !utf16.IsSurrogate(r) {
						k := utf8.EncodeRune(buf[:], r)
						w.add(buf[:k], i, i+n)
						i += n
						continue
					}
				}
			}
		}
		w.add([]byte{s[i]}, i, i+1)
		i++
	}
	return w.view(), true
}

// htmlRefs reads the character references an HTML page escapes text with:
// the five named ones and numeric ones.
func htmlRefs(s string) (view, bool) {
	if !strings.ContainsRune(s, '&') {
		return view{}, false
	}
	var w builder
	var buf [utf8.UTFMax]byte
	for i := 0; i < len(s); {
		if s[i] == '&' {
			if end := strings.IndexByte(s[i:min(len(s), i+12)], ';'); end > 1 {
				if r, ok := htmlRef(s[i+1 : i+end]); ok {
					k := utf8.EncodeRune(buf[:], r)
					w.add(buf[:k], i, i+end+1)
					i += end + 1
					continue
				}
			}
		}
		w.add([]byte{s[i]}, i, i+1)
		i++
	}
	return w.view(), true
}

func htmlRef(name string) (rune, bool) {
	switch name {
	case "amp":
		return '&', true
	case "lt":
		return '<', true
	case "gt":
		return '>', true
	case "quot":
		return '"', true
	case "apos":
		return '\'', true
	}
	if len(name) < 2 || name[0] != '#' {
		return 0, false
	}
	digits, base := name[1:], rune(10)
	if digits[0] == 'x' || digits[0] == 'X' {
		digits, base = digits[1:], 16
	}
	if digits == "" || len(digits) > 7 {
		return 0, false
	}
	var r rune
	for i := 0; i < len(digits); i++ {
		d, ok := unhex(digits[i])
		if !ok || rune(d) >= base {
			return 0, false
		}
		r = r*base + rune(d)
	}
	if r > utf8.MaxRune || utf16.IsSurrogate(r) {
		return 0, false
	}
	return r, true
}
