package transfer

import (
	"errors"
	"fmt"
	"mime"
	"net/url"
	"path"
	"strings"
	"unicode"
	"unicode/utf8"
)

// ContentRange is a parsed Content-Range header (RFC 9110 §14.4).
type ContentRange struct {
	// Start and End are the first and last byte positions sent, inclusive;
	// both -1 in the unsatisfied form "bytes */N".
	Start, End int64
	// Total is the complete length; -1 when the server sent "*".
	Total int64
}

// ParseContentRange parses "bytes A-B/N", "bytes A-B/*" or "bytes */N".
// It rejects anything else, including A > B, B >= N, signs, spaces inside
// numbers and numbers that overflow int64.
func ParseContentRange(v string) (ContentRange, error) {
	bad := func(why string) (ContentRange, error) {
		return ContentRange{}, fmt.Errorf("transfer: bad Content-Range %q: %s", v, why)
	}
	rest, ok := strings.CutPrefix(strings.TrimSpace(v), "bytes ")
	if !ok {
		return bad("unit is not bytes")
	}
	rng, total, ok := strings.Cut(strings.TrimLeft(rest, " "), "/")
	if !ok {
		return bad("no /")
	}
	cr := ContentRange{Start: -1, End: -1, Total: -1}
	if total != "*" {
		n, err := parseDecimal(total)
		if err != nil {
			return bad("total: " + err.Error())
		}
		cr.Total = n
	}
	if rng == "*" {
		if cr.Total < 0 {
			return bad("neither range nor total")
		}
		return cr, nil
	}
	a, b, ok := strings.Cut(rng, "-")
	if !ok {
		return bad("range has no -")
	}
	var err error
	if cr.Start, err = parseDecimal(a); err != nil {
		return bad("first byte: " + err.Error())
	}
	if cr.End, err = parseDecimal(b); err != nil {
		return bad("last byte: " + err.Error())
	}
	if cr.Start > cr.End {
		return bad("first byte after last")
	}
	if cr.Total >= 0 && cr.End >= cr.Total {
		return bad("last byte beyond total")
	}
	return cr, nil
}

// parseDecimal parses a non-negative decimal integer: ASCII digits only, no
// sign, no spaces, no overflow. HTTP and tus lengths and offsets all use it.
func parseDecimal(s string) (int64, error) {
	if s == "" {
		return 0, errors.New("empty number")
	}
	if len(s) > 19 {
		return 0, errors.New("number too large")
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("not a number: %q", s)
		}
		if n > (1<<63-1-int64(c-'0'))/10 {
			return 0, errors.New("number too large")
		}
		n = n*10 + int64(c-'0')
	}
	return n, nil
}

// parseTusNumber parses a tus Upload-Offset or Upload-Length value.
func parseTusNumber(name, v string) (int64, error) {
	n, err := parseDecimal(v)
	if err != nil {
		return 0, fmt.Errorf("transfer: bad %s %q: %w", name, v, err)
	}
	return n, nil
}

// parseTusList parses a comma-separated tus header value (Tus-Extension,
// Tus-Version, Tus-Checksum-Algorithm) into its trimmed, non-empty items.
// Items must be tokens (RFC 9110 §5.6.2); anything else is an error.
func parseTusList(v string) ([]string, error) {
	var out []string
	for item := range strings.SplitSeq(v, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		for i := 0; i < len(item); i++ {
			if !isTokenChar(item[i]) {
				return nil, fmt.Errorf("transfer: bad tus list item %q", item)
			}
		}
		out = append(out, item)
	}
	return out, nil
}

func isTokenChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// maxNameBytes is the longest file name most file systems accept (255),
// less the ".part.lock" of the lock beside the .part the download is written
// to first: a 255-byte name made the .part fail to open with ENAMETOOLONG.
const maxNameBytes = 255 - len(".part.lock")

// SafeFileName turns a name suggested by a server (Content-Disposition) or a
// URL into a single local file name that cannot escape its directory: only
// the last path element is kept (both / and \ separate), control, invisible
// format and line-break characters are dropped, leading dots and spaces are
// trimmed together (". .bash_profile" gives "bash_profile": no "..", no
// hidden files), trailing spaces too, and the result is cut to 245 bytes on a
// character boundary (room for ".part.lock"). Sanitising its result again changes
// nothing. It returns "" when nothing usable is left; callers then choose a
// fallback.
func SafeFileName(name string) string {
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	name = strings.Map(func(r rune) rune {
		if r == utf8.RuneError || unicode.IsControl(r) || unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp) {
			return -1
		}
		return r
	}, name)
	// Dots and spaces in any order: trimming them one after the other left
	// the dot of ". .bash_profile".
	name = strings.TrimLeftFunc(name, func(r rune) bool { return r == '.' || unicode.IsSpace(r) })
	for len(name) > maxNameBytes {
		_, size := utf8.DecodeLastRuneInString(name)
		name = name[:len(name)-size]
	}
	return strings.TrimRightFunc(name, unicode.IsSpace)
}

// nameFromDisposition returns the filename parameter of a Content-Disposition
// header (filename* preferred, as mime decodes it), unsanitised; "" if none.
func nameFromDisposition(v string) string {
	if v == "" {
		return ""
	}
	_, params, err := mime.ParseMediaType(v)
	if err != nil {
		return ""
	}
	return params["filename"]
}

// nameFromURL returns the last segment of u's path, unescaped; "" if none.
func nameFromURL(u *url.URL) string {
	p := u.Path
	if p == "" || strings.HasSuffix(p, "/") {
		return ""
	}
	return path.Base(p)
}
