package rebound_test

import (
	"strings"
	"testing"
	"time"

	"github.com/rebound-go/rebound"
)

var raNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func TestParseRetryAfter(t *testing.T) {
	tests := []struct {
		in string
		d  time.Duration
		ok bool
	}{
		{"0", 0, true},
		{"1", time.Second, true},
		{"120", 120 * time.Second, true},
		{"  120  ", 120 * time.Second, true},
		{"\t5\r\n", 5 * time.Second, true},
		{"007", 7 * time.Second, true},
		{"86400", 24 * time.Hour, true},
		{"86401", rebound.RetryAfterCeiling, true},
		{"99999999999999999999999999999999", rebound.RetryAfterCeiling, true},
		// The three HTTP-date forms, 90 s after raNow.
		{"Sun, 01 Mar 2026 12:01:30 GMT", 90 * time.Second, true},
		{"Sunday, 01-Mar-26 12:01:30 GMT", 90 * time.Second, true},
		{"Sun Mar  1 12:01:30 2026", 90 * time.Second, true},
		{" Sun, 01 Mar 2026 12:01:30 GMT ", 90 * time.Second, true},
		// Past dates: retry now.
		{"Sun, 01 Mar 2026 11:00:00 GMT", 0, true},
		{"Thu, 01 Jan 1970 00:00:00 GMT", 0, true},
		// Far future: capped.
		{"Fri, 31 Dec 9999 23:59:59 GMT", rebound.RetryAfterCeiling, true},
		{"Mon, 02 Mar 2026 13:00:00 GMT", rebound.RetryAfterCeiling, true},
		// Garbage: ignored.
		{"", 0, false},
		{"   ", 0, false},
		{"-5", 0, false},
		{"+5", 0, false},
		{"1.5", 0, false},
		{"1e3", 0, false},
		{"12 s", 0, false},
		{"soon", 0, false},
		{"0x10", 0, false},
		{"Sun, 01 Mar 2026 12:01:30 PST", 0, false},
		{"2026-03-01T12:01:30Z", 0, false},
		{"Sun, 32 Mar 2026 12:01:30 GMT", 0, false},
	}
	for _, tt := range tests {
		d, ok := rebound.ParseRetryAfter(tt.in, raNow)
		if d != tt.d || ok != tt.ok {
			t.Errorf("ParseRetryAfter(%q) = (%s, %v), want (%s, %v)", tt.in, d, ok, tt.d, tt.ok)
		}
	}
}

func FuzzParseRetryAfter(f *testing.F) {
	for _, s := range []string{
		"", "0", "120", " 7 ", "-1", "1.5", "99999999999999999999999",
		"Sun, 01 Mar 2026 12:01:30 GMT", "Sunday, 01-Mar-26 12:01:30 GMT",
		"Sun Mar  1 12:01:30 2026", "Fri, 31 Dec 9999 23:59:59 GMT",
		"Thu, 01 Jan 1970 00:00:00 GMT", "\x00", "9\xff", strings.Repeat("9", 400),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		d, ok := rebound.ParseRetryAfter(v, raNow)
		if !ok && d != 0 {
			t.Fatalf("ParseRetryAfter(%q) = (%s, false): a rejected value must give 0", v, d)
		}
		if d < 0 || d > rebound.RetryAfterCeiling {
			t.Fatalf("ParseRetryAfter(%q) = %s, outside [0, RetryAfterCeiling]", v, d)
		}
	})
}
