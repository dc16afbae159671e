package reboundhttp

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"syscall"
	"testing"
)

func TestNeverReached(t *testing.T) {
	cases := []struct {
		err  error
		want bool
	}{
		{&net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, true},
		{fmt.Errorf("wrapped: %w", &net.OpError{Op: "dial", Err: &net.DNSError{Err: "no such host", IsNotFound: true}}), true},
		{&net.DNSError{Err: "server misbehaving", IsTemporary: true}, true},
		{&net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}, false},
		{&net.OpError{Op: "write", Net: "tcp", Err: syscall.EPIPE}, false},
		{io.ErrUnexpectedEOF, false},
		{errors.New("net/http: timeout awaiting response headers"), false},
	}
	for _, c := range cases {
		if got := neverReached(c.err); got != c.want {
			t.Errorf("neverReached(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

func TestRedactURL(t *testing.T) {
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
		if got := redactURL(u); got != want {
			t.Errorf("redactURL(%q) = %q, want %q", in, got, want)
		}
	}
	if redactURL(nil) != "" {
		t.Error("nil URL")
	}
}
