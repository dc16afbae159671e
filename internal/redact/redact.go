// Package redact is the one place that decides what of a request may be
// shown: every message, --json event, log attribute, status line and stored
// item error of rebound goes through it on its way out. It uses the standard
// library only, so reboundhttp can import it.
//
// Three tools, for three kinds of leak:
//
//   - URL and URLString show a URL as scheme://host/path: userinfo, query
//     and fragment, where tokens, signatures and passwords live, are dropped.
//     Text does the same to every URL written inside a free text (a
//     *url.Error's message quotes the full URL), and URLError fixes a
//     *url.Error in place where it is made.
//   - Secrets scrubs the text a server sent back (an error body that echoes
//     the request) of the credentials one request carried: its URL's
//     userinfo and query values and the values of its credential headers
//     (CredentialHeader is the rule), whether the server echoed them raw or
//     encoded (see Scrub for the forms covered).
//   - Printable and Text make a string safe for a terminal and for the state
//     file: no control characters (ESC, C1), no bidi overrides, no invalid
//     UTF-8, each replaced by a visible escape.
package redact

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/url"
	"strings"
)

// Mask replaces every secret Secrets.Scrub finds.
const Mask = "[redacted]"

// MinSecret is the shortest value Secrets hides in free text: shorter ones
// ("1", "json", "yes") would blank out common words of a server's message.
// URL and Text drop the whole query, whatever the length of its values.
const MinSecret = 6

// URL returns u as scheme://host/path: no userinfo, query or fragment. An
// opaque URL (mailto:x) shows only its scheme. nil gives "".
func URL(u *url.URL) string {
	if u == nil {
		return ""
	}
	if u.Opaque != "" {
		return u.Scheme + ":" + "[opaque]"
	}
	// The host is the one part left as the server or user wrote it (the
	// path is escaped): keep a hostile one off the terminal.
	return u.Scheme + "://" + Printable(u.Host) + u.EscapedPath()
}

// Identity returns a name for u that tells apart what u tells apart but
// holds no secret, for keys that are stored (a transfer's state key): URL's
// form, plus a hash of the userinfo and query when u has any. A presigned
// URL's signature thus never reaches a state file, yet two URLs that differ
// only in their query still name two resources.
func Identity(u *url.URL) string {
	if u == nil {
		return ""
	}
	shown := URL(u)
	secret := u.User.String() + "?" + u.RawQuery
	if u.User == nil && u.RawQuery == "" && !u.ForceQuery {
		return shown
	}
	sum := sha256.Sum256([]byte(secret))
	return shown + "#sha256:" + hex.EncodeToString(sum[:12])
}

// URLString is URL for a URL not yet parsed. A string that does not parse
// loses everything from its first '?' or '#' and any userinfo before the
// host, so a malformed URL in a message still shows where it pointed.
func URLString(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		return URL(u)
	}
	s := raw
	if i := strings.IndexAny(s, "?#"); i >= 0 {
		s = s[:i]
	}
	start := 0
	if i := strings.Index(s, "://"); i >= 0 {
		start = i + 3
	}
	end := len(s)
	if i := strings.IndexByte(s[start:], '/'); i >= 0 {
		end = start + i
	}
	if at := strings.LastIndexByte(s[start:end], '@'); at >= 0 {
		s = s[:start] + s[start+at+1:]
	}
	return Printable(s)
}

// URLError drops the userinfo and query of the URL in err's *url.Error (what
// http.Client.Do and url.Parse return), in place, and returns err. Call it
// where such an error is made, before the error travels: its message quotes
// the URL, and every log line and retry event on the way would show it.
func URLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		ue.URL = URLString(ue.URL)
	}
	return err
}

// CredentialHeader reports whether a header named name carries a
// credential, so that its value is never shown: Authorization,
// Proxy-Authorization, Cookie, Set-Cookie, and any name containing auth,
// cookie, token, key, secret, session, password, passwd, credential or
// signature (X-Api-Key, X-Auth-Token, X-Amz-Signature ...), in any case.
// Idempotency-Key is not one: rebound derives it from the job and shows it.
func CredentialHeader(name string) bool {
	k := strings.ToLower(name)
	if k == "idempotency-key" {
		return false
	}
	for _, w := range credentialWords {
		if strings.Contains(k, w) {
			return true
		}
	}
	return false
}

var credentialWords = []string{"auth", "cookie", "token", "key", "secret", "session", "password", "passwd", "credential", "signature"}

// Secrets is the set of credentials one request carried, to be scrubbed from
// what the server answered. The zero value is empty and ready to use; it is
// not safe for concurrent Adds.
type Secrets struct {
	vals []string
}

// Add adds v, unless it is shorter than MinSecret or part of Mask+Mask
// (where hiding it would hide nothing).
func (s *Secrets) Add(v string) {
	if len(v) < MinSecret || strings.Contains(Mask+Mask, v) {
		return
	}
	for _, have := range s.vals {
		if have == v {
			return
		}
	}
	s.vals = append(s.vals, v)
}

// AddURL adds the user name, password and query values of the URL raw.
func (s *Secrets) AddURL(raw string) {
	u, err := url.Parse(raw)
	if err != nil {
		return
	}
	if u.User != nil {
		s.Add(u.User.Username())
		if p, ok := u.User.Password(); ok {
			s.Add(p)
		}
	}
	for _, vs := range u.Query() {
		for _, v := range vs {
			s.Add(v)
		}
	}
}

// AddHeader adds the value of a header named name if CredentialHeader says
// it is one: the whole value, and each of its words and name=value parts,
// since a server may echo only the token of "Bearer <token>" or one cookie
// of several. A Basic credential also gives its decoded user:password.
func (s *Secrets) AddHeader(name, value string) {
	if !CredentialHeader(name) {
		return
	}
	s.Add(value)
	fields := strings.FieldsFunc(value, func(r rune) bool { return r == ' ' || r == ';' || r == ',' })
	for i, part := range fields {
		if authScheme(part) {
			if strings.EqualFold(part, "basic") && i+1 < len(fields) {
				s.addBasic(fields[i+1])
			}
			continue // "Bearer" is no secret, and hiding it blanks the word everywhere
		}
		s.Add(part)
		if _, val, ok := strings.Cut(part, "="); ok {
			s.Add(val)
		}
	}
}

func (s *Secrets) addBasic(b64 string) {
	dec, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return
	}
	s.Add(string(dec))
	user, pass, _ := strings.Cut(string(dec), ":")
	s.Add(user)
	s.Add(pass)
}

// authScheme reports whether w is the name of an HTTP authentication scheme.
func authScheme(w string) bool {
	switch strings.ToLower(w) {
	case "basic", "bearer", "digest", "token", "negotiate", "ntlm", "hoba", "mutual", "vapid", "scram-sha-256", "aws4-hmac-sha256":
		return true
	}
	return false
}

// Len reports how many secrets s holds.
func (s *Secrets) Len() int {
	if s == nil {
		return 0
	}
	return len(s.vals)
}
