package idempotency_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/rebound-go/rebound/idempotency"
)

func TestParseKey(t *testing.T) {
	cases := []struct {
		in, want string
		err      error
	}{
		{`"8e03978e-40d5-43e8-bc93-6894a57f9324"`, "8e03978e-40d5-43e8-bc93-6894a57f9324", nil},
		{` "abc" `, "abc", nil},
		{`"a b"`, "a b", nil},
		{`"a\"b\\c"`, `a"b\c`, nil},
		{`abc-123`, "abc-123", nil},
		{"", "", idempotency.ErrKeyEmpty},
		{"  ", "", idempotency.ErrKeyEmpty},
		{`""`, "", idempotency.ErrKeyEmpty},
		{`"abc`, "", idempotency.ErrKeySyntax},
		{`"a\nb"`, "", idempotency.ErrKeySyntax},
		{`"abc";p=1`, "", idempotency.ErrKeySyntax},
		{`"a", "b"`, "", idempotency.ErrKeySyntax},
		{"\"a\x00\"", "", idempotency.ErrKeySyntax},
		{"\"é\"", "", idempotency.ErrKeySyntax},
		{`a b`, "", idempotency.ErrKeySyntax},
		{`a,b`, "", idempotency.ErrKeySyntax},
		{`"` + strings.Repeat("x", 256) + `"`, "", idempotency.ErrKeyTooLong},
		{strings.Repeat("x", 255), strings.Repeat("x", 255), nil},
	}
	for _, c := range cases {
		got, err := idempotency.ParseKey(c.in, 0)
		if got != c.want || !errors.Is(err, c.err) {
			t.Errorf("ParseKey(%q) = %q, %v; want %q, %v", c.in, got, err, c.want, c.err)
		}
	}
}

func FuzzParseKey(f *testing.F) {
	for _, s := range []string{`"abc"`, `abc`, `"a\"b"`, `""`, `"`, `\`, `"a";b`, " \"x\"\t", strings.Repeat("k", 300)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		key, err := idempotency.ParseKey(in, 64)
		if err != nil {
			if key != "" {
				t.Fatalf("error %v with key %q", err, key)
			}
			return
		}
		if key == "" || len(key) > 64 {
			t.Fatalf("ParseKey(%q) = %q: empty or too long", in, key)
		}
		for i := 0; i < len(key); i++ {
			if key[i] < 0x20 || key[i] > 0x7e {
				t.Fatalf("ParseKey(%q) = %q: non-printable byte", in, key)
			}
		}
		// Round trip: the canonical form parses back to the same key.
		q, ok := idempotency.FormatKey(key)
		if !ok {
			t.Fatalf("FormatKey(%q) refused a parsed key", key)
		}
		if again, err := idempotency.ParseKey(q, 64); err != nil || again != key {
			t.Fatalf("round trip %q -> %q -> %q, %v", key, q, again, err)
		}
	})
}
