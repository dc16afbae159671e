package reboundhttp

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"syscall"
	"testing"
	"time"
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
		if got := RedactURL(u); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
	if RedactURL(nil) != "" {
		t.Error("nil URL")
	}
}

// A deadline set by someone else (crypto/tls interrupts a handshake with a
// deadline in the past) wins over the stall deadline, and its error is not
// reported as a stall.
func TestStallConnExternalDeadlineWins(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	c := &stallConn{Conn: a, stall: time.Hour, first: time.Hour}
	if err := c.SetDeadline(time.Now().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	_, err := c.Read(make([]byte, 1))
	if !errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, ErrStalled) {
		t.Fatalf("read: %v; want the external deadline's error", err)
	}
	if err := c.SetDeadline(time.Time{}); err != nil {
		t.Fatal(err)
	}
	c.stall = 20 * time.Millisecond
	_, err = c.Read(make([]byte, 1))
	if !errors.Is(err, ErrStalled) {
		t.Fatalf("read: %v; want ErrStalled once the external deadline is cleared", err)
	}
}

// countConn counts read-deadline updates.
type countConn struct {
	net.Conn
	sets int
}

func (c *countConn) SetReadDeadline(t time.Time) error {
	c.sets++
	return c.Conn.SetReadDeadline(t)
}

// A request and its response cost one deadline update, not one per Read.
func TestStallConnSparesDeadlineUpdates(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	cc := &countConn{Conn: a}
	c := &stallConn{Conn: cc, stall: time.Minute, first: time.Minute}
	go func() {
		buf := make([]byte, 3)
		io.ReadFull(b, buf)
		for range 5 {
			b.Write([]byte("resp"))
		}
	}()
	if _, err := c.Write([]byte("req")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	for range 5 {
		if _, err := io.ReadFull(c, buf); err != nil {
			t.Fatal(err)
		}
	}
	if cc.sets != 1 {
		t.Fatalf("%d deadline updates for one request and 5 reads, want 1", cc.sets)
	}
}
