package redact

import (
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://user:secret@example.com:8443/a%20b/c?token=x#frag": "https://example.com:8443/a%20b/c",
		"http://example.com":                 "http://example.com",
		"http://[::1]:80/p?q=1":              "http://[::1]:80/p",
		"mailto:someone@example.com?subject": "mailto:[opaque]",
	} {
		u, err := url.Parse(in)
		if err != nil {
			t.Fatal(err)
		}
		if got := URL(u); got != want {
			t.Errorf("URL(%q) = %q, want %q", in, got, want)
		}
		if got := URLString(in); got != want {
			t.Errorf("URLString(%q) = %q, want %q", in, got, want)
		}
	}
	if URL(nil) != "" {
		t.Error("nil URL")
	}
}

// A URL that does not parse still loses what may be secret.
func TestURLStringUnparseable(t *testing.T) {
	for in, want := range map[string]string{
		"http://u:SECRETPW@h\x7f/p?token=SECRET": `http://h\x7f/p`,
		"http://h/%zz?token=SECRET#x":            "http://h/%zz",
		"://u:SECRETPW@h":                        "://h",
		"h\x1b[2J/p":                             `h\x1b[2J/p`,
	} {
		if _, err := url.Parse(in); err == nil {
			t.Fatalf("%q parses; the test wants one that does not", in)
		}
		if got := URLString(in); got != want {
			t.Errorf("URLString(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestURLError(t *testing.T) {
	c := &http.Client{}
	_, err := c.Get("http://user:PASSWORD1@127.0.0.1:1/f?token=SECRET123")
	if err == nil {
		t.Fatal("no error from port 1")
	}
	msg := fmt.Errorf("download: %w", URLError(err)).Error()
	for _, s := range []string{"SECRET123", "PASSWORD1", "token"} {
		if strings.Contains(msg, s) {
			t.Errorf("%s survives: %s", s, msg)
		}
	}
	if !strings.Contains(msg, "http://127.0.0.1:1/f") {
		t.Errorf("the URL is gone altogether: %s", msg)
	}
	if URLError(nil) != nil {
		t.Error("URLError(nil) != nil")
	}
	plain := errors.New("x")
	if URLError(plain) != plain {
		t.Error("an error without a URL changed")
	}
}

func TestText(t *testing.T) {
	for in, want := range map[string]string{
		`Get "http://u:pw@h:1/f?token=SECRET": refused`:   `Get "http://h:1/f": refused`,
		"see https://h/a?x=1 and ftp://h2/b#frag done":    "see https://h/a and ftp://h2/b done",
		"no url here?token=x":                             "no url here?token=x",
		"line one\n\tline two \x1b[2J":                    "line one\n\tline two \\x1b[2J",
		`{"u":"http://h/p?k=SECRETXYZ\"}`:                 `{"u":"http://h/p\"}`,
		"://nothing?q=1 1http://h/?q":                     "://nothing?q=1 1http://h/",
		"https://h/p?q=SECRET https://h2/?q=SECRET2 tail": "https://h/p https://h2/ tail",
		"web+cal://h/?q=1":                                "web+cal://h/",
	} {
		if got := Text(in); got != want {
			t.Errorf("Text(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestPrintable(t *testing.T) {
	for in, want := range map[string]string{
		"404 Not Found":             "404 Not Found",
		"200 OK\x1b[2J\x1b]0;pwn\a": `200 OK\x1b[2J\x1b]0;pwn\x07`,
		"a\u202eb\u2066c":           `a\u202eb\u2066c`,
		"c1 \u0085 \u009b":          `c1 \u0085 \u009b`,
		"bad \xff\xfe utf8":         `bad \xff\xfe utf8`,
		"tab\tnl\ndel\x7f":          `tab\x09nl\x0adel\x7f`,
		"héllo wörld ✓ \\x1b":       "héllo wörld ✓ \\x1b",
		"sep\u2028":                 `sep\u2028`,
	} {
		if got := Printable(in); got != want {
			t.Errorf("Printable(%q) = %q, want %q", in, got, want)
		}
	}
	clean := "503 Service Unavailable"
	if n := testing.AllocsPerRun(100, func() { _ = Printable(clean) }); n != 0 {
		t.Errorf("Printable of a clean string allocates %v times", n)
	}
}

func TestCredentialHeader(t *testing.T) {
	for _, h := range []string{"Authorization", "proxy-authorization", "Cookie", "Set-Cookie", "X-Api-Key",
		"X-Auth-Token", "X-Client-Secret", "X-Session-Id", "X-Amz-Signature", "X-Password", "X-Credential"} {
		if !CredentialHeader(h) {
			t.Errorf("%s is not a credential header", h)
		}
	}
	for _, h := range []string{"Idempotency-Key", "Content-Type", "Accept", "User-Agent", "X-Request-ID"} {
		if CredentialHeader(h) {
			t.Errorf("%s is a credential header", h)
		}
	}
}

// scrubbed checks that Scrub removes every form of every secret from text
// and keeps the words in keep.
func scrubbed(t *testing.T, s *Secrets, text string, secrets, keep []string) {
	t.Helper()
	got := s.Scrub(text)
	for _, sec := range secrets {
		for _, f := range forms(sec) {
			if strings.Contains(got, f) {
				t.Errorf("%q (a form of %q) survives in %q", f, sec, got)
			}
		}
	}
	for _, k := range keep {
		if !strings.Contains(got, k) {
			t.Errorf("%q lost: %q", k, got)
		}
	}
}

// forms lists the encodings of sec that Scrub claims to cover, as the usual
// encoders write them.
func forms(sec string) []string {
	q := url.QueryEscape(sec)
	j, _ := json.Marshal(sec)
	all := []string{sec, q, url.PathEscape(sec), lowerHex(q), allPercent(sec), lowerHex(allPercent(sec)),
		url.QueryEscape(q), html.EscapeString(sec), allJSON(q), allHTML(q)}
	if utf8.ValidString(sec) {
		// JSON and HTML write characters, not bytes: invalid UTF-8 has no form there.
		all = append(all, string(j[1:len(j)-1]), allJSON(sec), allHTML(sec))
	}
	out := all[:0]
	for _, f := range all {
		if f != "" {
			out = append(out, f)
		}
	}
	return out
}

func allPercent(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		fmt.Fprintf(&b, "%%%02X", s[i])
	}
	return b.String()
}

func allJSON(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r > 0xffff {
			r1, r2 := utf16Encode(r)
			fmt.Fprintf(&b, `\u%04x\u%04X`, r1, r2)
			continue
		}
		fmt.Fprintf(&b, `\u%04x`, r)
	}
	return b.String()
}

func utf16Encode(r rune) (rune, rune) {
	r -= 0x10000
	return 0xd800 + (r>>10)&0x3ff, 0xdc00 + r&0x3ff
}

func allHTML(s string) string {
	var b strings.Builder
	for i, r := range s {
		if i%2 == 0 {
			fmt.Fprintf(&b, "&#%d;", r)
		} else {
			fmt.Fprintf(&b, "&#x%x;", r)
		}
	}
	return b.String()
}

func TestScrubForms(t *testing.T) {
	var s Secrets
	s.AddURL("https://u:PASS%2Bword@h/p?token=ab%2Bcd%20ef%2F12&page=2&empty=")
	s.AddHeader("Authorization", "Bearer AUTH/tok+en==")
	s.AddHeader("Cookie", "sid=COOKIE-1234")
	s.AddHeader("X-Api-Key", "k3y&<v>\"x'")
	s.AddHeader("Content-Type", "application/json-secretlooking")
	secrets := []string{"PASS+word", "ab+cd ef/12", "AUTH/tok+en==", "COOKIE-1234", "k3y&<v>\"x'"}
	for _, sec := range secrets {
		for _, f := range forms(sec) {
			scrubbed(t, &s, "error: got "+f+" in the request, page=2 sid Bearer application/json-secretlooking",
				secrets, []string{"error: got ", " in the request, page=2 sid Bearer application/json-secretlooking"})
		}
	}
	// Basic credentials: the server may echo the decoded user or password.
	var b Secrets
	b.AddHeader("Authorization", "Basic YWxpY2UxMjM6czNjcjN0UGFzcw==") // alice123:s3cr3tPass
	scrubbed(t, &b, "user alice123 with password s3cr3tPass, header Basic YWxpY2UxMjM6czNjcjN0UGFzcw==",
		[]string{"alice123", "s3cr3tPass", "YWxpY2UxMjM6czNjcjN0UGFzcw=="}, []string{"user ", " with password ", ", header "})
	// What precedes an encoded secret cannot hide it by joining it into an
	// escape of its own: a '%' before its percent-encoded form, a '\\'
	// before its JSON-escaped form.
	var adj Secrets
	adj.Add("00000 ")
	for _, text := range []string{"%00000+0", "%" + allHTML("00000+"), `\\` + allJSON("00000 "), "%2" + allPercent("00000 ")} {
		scrubbed(t, &adj, text, []string{"00000 "}, nil)
	}
	// Short values and non-credential headers are left alone.
	if got := s.Scrub("page 2 of application/json"); got != "page 2 of application/json" {
		t.Errorf("scrubbed what is no secret: %q", got)
	}
	var none Secrets
	if got := none.Scrub("x"); got != "x" {
		t.Error("empty Secrets changed the text")
	}
}

// A secret that is part of two Masks side by side would be found again in
// every Mask: Add refuses it, and Scrub does not loop.
func TestSecretInsideMaskRefused(t *testing.T) {
	var s Secrets
	s.Add("[redacted]")
	s.Add("acted][red")
	s.Add("SECRET")
	if s.Len() != 1 {
		t.Errorf("secrets inside the Mask were added: %d", s.Len())
	}
	if got := s.Scrub("SECRETSECRET [redacted]"); got != "[redacted] [redacted]" {
		t.Errorf("got %q", got)
	}
}

// FuzzRedact: a secret (at least MinSecret bytes, not inside the Mask) put
// into random text in any of the forms Scrub claims to cover never
// survives Scrub in any of those forms outside a Mask; text around it made
// of bytes that are neither in the secret nor escape characters is kept
// exactly.
func FuzzRedact(f *testing.F) {
	f.Add("tok+en/1 2", "error near ", " in request", uint8(0))
	f.Add("ab%2Bcd", "x", "y", uint8(3))
	f.Add("élan\u2028vital", "<p>", "</p>", uint8(9))
	f.Add(`q"\'&<>`, "{\"e\":\"", "\"}", uint8(7))
	f.Fuzz(func(t *testing.T, secret, before, after string, which uint8) {
		if len(secret) < MinSecret || strings.Contains(Mask+Mask, secret) {
			t.Skip()
		}
		var s Secrets
		s.AddURL("https://h/p?" + url.Values{"token": {secret}}.Encode())
		if s.Len() != 1 {
			t.Fatalf("a query value %q was not taken as a secret", secret)
		}
		fs := forms(secret)
		form := fs[int(which)%len(fs)]
		got := s.Scrub(before + form + after)
		if again := s.Scrub(got); again != got {
			t.Fatalf("Scrub found more in its own output %q: %q", got, again)
		}
		for _, piece := range strings.Split(got, Mask) {
			for _, f := range fs {
				if strings.Contains(piece, f) {
					t.Fatalf("form %q of secret %q survives: %q", f, secret, got)
				}
			}
		}
		keep := func(r rune) rune {
			if r == utf8.RuneError || strings.ContainsRune(secret, r) || strings.ContainsRune(`%+\&[]`, r) {
				return -1
			}
			return r
		}
		b, a := strings.Map(keep, before), strings.Map(keep, after)
		if got := s.Scrub(b + form + a); got != b+Mask+a {
			t.Fatalf("Scrub(%q + form + %q) = %q, want the text around the secret kept", b, a, got)
		}
	})
}

// FuzzPrintable: Printable's output is valid UTF-8 with no C0 or C1
// control, bidi control or line separator; printable ASCII comes out as it
// went in; and Text, which keeps line breaks and tabs, differs only there.
func FuzzPrintable(f *testing.F) {
	f.Add("200 OK")
	f.Add("\x1b[2J\x1b]0;title\a\u202e\xff\u0085\n")
	f.Fuzz(func(t *testing.T, s string) {
		check := func(name, out string, lines bool) {
			if !utf8.ValidString(out) {
				t.Fatalf("%s(%q) = %q is not valid UTF-8", name, s, out)
			}
			for _, r := range out {
				if unsafeRune(r) && !(lines && (r == '\n' || r == '\t')) {
					t.Fatalf("%s(%q) = %q has %U", name, s, out, r)
				}
			}
		}
		out := Printable(s)
		check("Printable", out, false)
		check("Text", Text(s), true)
		ascii := true
		for i := 0; i < len(s); i++ {
			if s[i] < 0x20 || s[i] >= 0x7f {
				ascii = false
			}
		}
		if ascii && out != s {
			t.Fatalf("Printable changed printable ASCII %q to %q", s, out)
		}
		if len(out) < len(s) {
			t.Fatalf("Printable(%q) = %q dropped something", s, out)
		}
	})
}

// Identity keeps URLs that differ in their query or userinfo apart, and shows
// neither.
func TestIdentity(t *testing.T) {
	parse := func(s string) *url.URL {
		u, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	a := Identity(parse("https://h/f.iso?X-Amz-Signature=SECRETONE"))
	b := Identity(parse("https://h/f.iso?X-Amz-Signature=SECRETTWO"))
	c := Identity(parse("https://user:PASSWORD@h/f.iso"))
	plain := Identity(parse("https://h/f.iso"))
	if a == b || a == plain || c == plain {
		t.Fatalf("identities collide: %q %q %q %q", a, b, c, plain)
	}
	if plain != "https://h/f.iso" {
		t.Fatalf("plain URL's identity %q", plain)
	}
	for _, id := range []string{a, b, c} {
		if strings.Contains(id, "SECRET") || strings.Contains(id, "PASSWORD") || strings.Contains(id, "user") {
			t.Fatalf("identity shows a secret: %q", id)
		}
	}
	if again := Identity(parse("https://h/f.iso?X-Amz-Signature=SECRETONE")); again != a {
		t.Fatalf("identity not stable: %q then %q", a, again)
	}
}
