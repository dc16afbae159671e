package transfer

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func TestParseContentRange(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    ContentRange
		wantErr bool
	}{
		{in: "bytes 0-99/100", want: ContentRange{0, 99, 100}},
		{in: "bytes 100-199/*", want: ContentRange{100, 199, -1}},
		{in: "bytes */1000", want: ContentRange{-1, -1, 1000}},
		{in: " bytes  5-5/6 ", want: ContentRange{5, 5, 6}},
		{in: "bytes 9223372036854775806-9223372036854775806/9223372036854775807", want: ContentRange{1<<63 - 2, 1<<63 - 2, 1<<63 - 1}},
		{in: "", wantErr: true},
		{in: "bytes", wantErr: true},
		{in: "items 0-1/2", wantErr: true},
		{in: "bytes 0-99", wantErr: true},
		{in: "bytes */*", wantErr: true},
		{in: "bytes 10-5/100", wantErr: true},
		{in: "bytes 0-100/100", wantErr: true},
		{in: "bytes -1-5/10", wantErr: true},
		{in: "bytes +1-5/10", wantErr: true},
		{in: "bytes 1 -5/10", wantErr: true},
		{in: "bytes 0-9223372036854775808/*", wantErr: true},
		{in: "bytes 0-99999999999999999999/*", wantErr: true},
		{in: "bytes 0x1-2/3", wantErr: true},
	} {
		got, err := ParseContentRange(tc.in)
		if (err != nil) != tc.wantErr || (!tc.wantErr && got != tc.want) {
			t.Errorf("ParseContentRange(%q) = %+v, %v; want %+v, err %v", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}

func FuzzParseContentRange(f *testing.F) {
	for _, s := range []string{"bytes 0-99/100", "bytes 1-2/*", "bytes */5", "bytes 5-1/10", "bytes 0-9223372036854775807/*", "bytes -/", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		cr, err := ParseContentRange(s)
		if err != nil {
			return
		}
		// Whatever parses is consistent, and prints back to itself.
		switch {
		case cr.Start == -1:
			if cr.End != -1 || cr.Total < 0 {
				t.Fatalf("%q: %+v", s, cr)
			}
		case cr.Start < 0 || cr.End < cr.Start || (cr.Total >= 0 && cr.End >= cr.Total) || cr.Total < -1:
			t.Fatalf("%q: inconsistent %+v", s, cr)
		}
		again, err := ParseContentRange(format(cr))
		if err != nil || again != cr {
			t.Fatalf("%q: %+v does not round-trip: %+v %v", s, cr, again, err)
		}
	})
}

func format(cr ContentRange) string {
	total := "*"
	if cr.Total >= 0 {
		total = fmt.Sprint(cr.Total)
	}
	if cr.Start < 0 {
		return "bytes */" + total
	}
	return fmt.Sprintf("bytes %d-%d/%s", cr.Start, cr.End, total)
}

func TestParseTusHeaders(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    int64
		wantErr bool
	}{
		{"0", 0, false}, {"1048576", 1 << 20, false}, {"9223372036854775807", 1<<63 - 1, false},
		{"", 0, true}, {"-1", 0, true}, {"+1", 0, true}, {" 1", 0, true}, {"1.5", 0, true},
		{"9223372036854775808", 0, true}, {"0x10", 0, true}, {"١٢", 0, true},
	} {
		got, err := parseTusNumber("Upload-Offset", tc.in)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("parseTusNumber(%q) = %d, %v", tc.in, got, err)
		}
	}
	got, err := parseTusList("creation, creation-with-upload ,termination,,checksum")
	if err != nil || !slices.Equal(got, []string{"creation", "creation-with-upload", "termination", "checksum"}) {
		t.Errorf("parseTusList = %q, %v", got, err)
	}
	for _, bad := range []string{"a b", "créat", "x;y", "a,\"b\""} {
		if _, err := parseTusList(bad); err == nil {
			t.Errorf("parseTusList(%q) accepted", bad)
		}
	}
}

func FuzzParseTusNumber(f *testing.F) {
	for _, s := range []string{"0", "42", "9223372036854775807", "9223372036854775808", "-1", "", "1e3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := parseTusNumber("Upload-Length", s)
		if err != nil {
			return
		}
		if n < 0 || fmt.Sprint(n) != strings.TrimLeft(s, "0") && !(n == 0 && strings.Trim(s, "0") == "") {
			t.Fatalf("%q parsed as %d", s, n)
		}
	})
}

func FuzzParseTusList(f *testing.F) {
	for _, s := range []string{"creation,termination", "checksum, expiration", "", ",,", "a b", "sha1,md5"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		items, err := parseTusList(s)
		if err != nil {
			return
		}
		for _, it := range items {
			if it == "" || strings.ContainsAny(it, ", \t") {
				t.Fatalf("%q gave item %q", s, it)
			}
		}
		again, err := parseTusList(strings.Join(items, ","))
		if err != nil || !slices.Equal(again, items) {
			t.Fatalf("%q: %q does not round-trip", s, items)
		}
	})
}

// FuzzSafeFileName states what a name the server chose may be: empty, or a
// single local name that is not hidden (no leading dot: the server must not
// plant .bash_profile), holds no separator, no control, format or line-break
// character and no invalid UTF-8, leaves room for ".part", has no surrounding
// spaces, and is a fixed point (sanitising it again changes nothing).
func FuzzSafeFileName(f *testing.F) {
	for _, s := range []string{"../../etc/passwd", "/abs", "a/b", "..", "", "résumé.pdf", "a\\b", ".\x00.", ". .bash_profile", " . x", strings.Repeat("é", 130) + " x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := SafeFileName(s)
		if got == "" {
			return
		}
		bad := func(why string) { t.Fatalf("SafeFileName(%q) = %q: %s", s, got, why) }
		switch {
		case strings.HasPrefix(got, "."):
			bad("hidden (leading dot)")
		case strings.ContainsAny(got, `/\`), !filepath.IsLocal(got):
			bad("not a single local name")
		case len(got) > maxNameBytes:
			bad("too long for its .part")
		case !utf8.ValidString(got):
			bad("invalid UTF-8")
		case strings.TrimSpace(got) != got:
			bad("surrounding spaces")
		case SafeFileName(got) != got:
			bad("not idempotent: " + SafeFileName(got))
		}
		for _, r := range got {
			if unicode.IsControl(r) || unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp) {
				bad(fmt.Sprintf("holds %U", r))
			}
		}
	})
}

func TestEncodeMetadata(t *testing.T) {
	got, err := encodeMetadata(map[string]string{"type": "text/plain", "empty": ""}, "a b.txt")
	if err != nil || got != "empty,filename YSBiLnR4dA==,type dGV4dC9wbGFpbg==" {
		t.Fatalf("encodeMetadata = %q, %v", got, err)
	}
	for _, bad := range []string{"", "a b", "a,b", "é"} {
		if _, err := encodeMetadata(map[string]string{bad: "x"}, "f"); err == nil {
			t.Errorf("key %q accepted", bad)
		}
	}
}
