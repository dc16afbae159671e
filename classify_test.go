package rebound_test

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/rebound-go/rebound"
)

// These tests classify errors produced by real sockets on the loopback
// interface, not hand-made values, so they catch changes in how the standard
// library wraps its errors.

func wantKind(t *testing.T, err error, want rebound.Kind) rebound.Class {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want a %s one", want)
	}
	c := rebound.Classify(err)
	if c.Kind != want {
		t.Fatalf("Classify(%v) [%T] = %s (%q), want %s", err, err, c.Kind, c.Reason, want)
	}
	return c
}

// closedAddr returns a loopback address nobody listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestClassifyRealConnectionRefused(t *testing.T) {
	addr := closedAddr(t)
	_, err := net.Dial("tcp", addr)
	c := wantKind(t, err, rebound.KindTransient)
	if c.Reason != "connection refused" {
		t.Errorf("reason %q, want connection refused", c.Reason)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("dial error %v is not ECONNREFUSED; the test is not testing what it says", err)
	}

	// The same through net/http, which wraps it in *url.Error.
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	_, err = client.Get("http://" + addr + "/")
	var ue *url.Error
	if !errors.As(err, &ue) {
		t.Fatalf("net/http error %T, want *url.Error", err)
	}
	if c := wantKind(t, err, rebound.KindTransient); c.Reason != "connection refused" {
		t.Errorf("reason %q through net/http, want connection refused", c.Reason)
	}
}

// resetServer accepts connections, reads one byte, then closes with
// SO_LINGER 0 so the kernel sends a RST: "connection reset by peer".
func resetServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			var b [1]byte
			c.Read(b[:])
			c.(*net.TCPConn).SetLinger(0)
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().String()
}

func TestClassifyRealConnectionReset(t *testing.T) {
	addr := resetServer(t)
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(conn)
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("read error %v, want ECONNRESET", err)
	}
	if c := wantKind(t, err, rebound.KindTransient); c.Reason != "connection reset" {
		t.Errorf("reason %q, want connection reset", c.Reason)
	}

	// Through net/http: the request is written, then the peer resets.
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	_, err = client.Post("http://"+addr+"/", "text/plain", nil)
	wantKind(t, err, rebound.KindTransient)
}

// silentServer accepts connections and never answers.
func silentServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().String()
}

func TestClassifyRealTimeout(t *testing.T) {
	addr := silentServer(t)
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	_, err = conn.Read(make([]byte, 1))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read error %v, want a deadline error", err)
	}
	if c := wantKind(t, err, rebound.KindTransient); c.Reason != "timeout" {
		t.Errorf("reason %q, want timeout", c.Reason)
	}

	client := &http.Client{Transport: &http.Transport{}, Timeout: 20 * time.Millisecond}
	defer client.CloseIdleConnections()
	_, err = client.Get("http://" + addr + "/")
	if c := wantKind(t, err, rebound.KindTransient); c.Reason != "timeout" {
		t.Errorf("reason %q through net/http, want timeout", c.Reason)
	}
}

func TestClassifyRealUnexpectedEOF(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, buf, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		buf.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly a part")
		buf.Flush()
		conn.Close()
	}))
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("body error %v, want unexpected EOF", err)
	}
	if c := wantKind(t, err, rebound.KindTransient); c.Reason != "unexpected eof" {
		t.Errorf("reason %q, want unexpected eof", c.Reason)
	}
}

func TestClassifyRealUntrustedTLS(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	srv.StartTLS()
	defer srv.Close()
	// A client that does not trust the test certificate: verification stays on.
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	_, err := client.Get(srv.URL)
	var cve *tls.CertificateVerificationError
	if !errors.As(err, &cve) {
		t.Fatalf("error %v [%T], want a certificate verification error", err, err)
	}
	if c := wantKind(t, err, rebound.KindPermanent); c.Reason != "tls" {
		t.Errorf("reason %q, want tls", c.Reason)
	}
}

// dnsServer answers every query on a loopback UDP port with rcode (3
// NXDOMAIN, 2 SERVFAIL), or never answers when rcode < 0. It lets the DNS
// tests use Go's real resolver without leaving the machine: a lookup of a
// ".invalid" name through the system resolver goes to the configured
// nameserver on this machine (RFC 6761 is not special-cased by Go).
func dnsServer(t *testing.T, rcode int) *net.Resolver {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if rcode < 0 || n < 12 {
				continue
			}
			msg := append([]byte(nil), buf[:n]...)
			flags := binary.BigEndian.Uint16(msg[2:4])
			flags |= 1 << 15 // QR: a response
			flags |= 1 << 7  // RA
			flags &^= 0xF    // clear RCODE
			flags |= uint16(rcode)
			binary.BigEndian.PutUint16(msg[2:4], flags)
			// Keep the question, drop any answer/authority/additional counts.
			binary.BigEndian.PutUint16(msg[6:8], 0)
			binary.BigEndian.PutUint16(msg[8:10], 0)
			if binary.BigEndian.Uint16(msg[10:12]) != 0 { // EDNS OPT record: strip it
				binary.BigEndian.PutUint16(msg[10:12], 0)
				msg = msg[:12+questionLen(msg[12:])]
			}
			pc.WriteTo(msg, from)
		}
	}()
	t.Cleanup(func() { pc.Close(); <-done })
	addr := pc.LocalAddr().String()
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", addr)
	}}
}

// questionLen returns the length of the single question at the start of b.
func questionLen(b []byte) int {
	i := 0
	for i < len(b) && b[i] != 0 {
		i += int(b[i]) + 1
	}
	return min(i+1+4, len(b))
}

func TestClassifyRealDNS(t *testing.T) {
	ctx := context.Background()
	_, err := dnsServer(t, 3).LookupHost(ctx, "nothing.invalid")
	var de *net.DNSError
	if !errors.As(err, &de) || !de.IsNotFound {
		t.Fatalf("NXDOMAIN lookup: %v, want a not-found *net.DNSError", err)
	}
	if c := wantKind(t, err, rebound.KindPermanent); c.Reason != "dns not found" {
		t.Errorf("reason %q, want dns not found", c.Reason)
	}

	_, err = dnsServer(t, 2).LookupHost(ctx, "flaky.invalid")
	if !errors.As(err, &de) || !de.IsTemporary {
		t.Fatalf("SERVFAIL lookup: %v, want a temporary *net.DNSError", err)
	}
	wantKind(t, err, rebound.KindTransient)

	tctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	_, err = dnsServer(t, -1).LookupHost(tctx, "silent.invalid")
	if !errors.As(err, &de) {
		t.Fatalf("silent lookup: %v, want a *net.DNSError", err)
	}
	wantKind(t, err, rebound.KindTransient)

	// And as a dialer sees it, wrapped in *net.OpError.
	d := net.Dialer{Resolver: dnsServer(t, 3)}
	_, err = d.DialContext(ctx, "tcp", "nothing.invalid:80")
	wantKind(t, err, rebound.KindPermanent)
}

func TestClassifyCallerCancelVersusAttemptTimeout(t *testing.T) {
	// The attempt's own deadline (Pipeline.Timeout) is transient: it is retried.
	calls := 0
	p := rebound.Pipeline{Retry: rebound.Retry{MaxAttempts: 3, Backoff: rebound.NoDelay}, Timeout: time.Millisecond}
	err := p.Do(context.Background(), func(ctx context.Context) error {
		calls++
		<-ctx.Done()
		return ctx.Err()
	})
	var re *rebound.RetryError
	if !errors.As(err, &re) {
		t.Fatalf("err %v, want *RetryError", err)
	}
	if calls != 3 || re.Reason != "attempts exhausted" || re.Class.Kind != rebound.KindTransient {
		t.Errorf("attempt timeouts: calls=%d reason=%q kind=%s, want 3, attempts exhausted, transient", calls, re.Reason, re.Class.Kind)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err %v does not unwrap to DeadlineExceeded", err)
	}

	// The caller's cancellation is permanent: no retry.
	ctx, cancel := context.WithCancel(context.Background())
	calls = 0
	err = p.Do(ctx, func(ctx context.Context) error {
		calls++
		cancel()
		return ctx.Err()
	})
	if !errors.As(err, &re) {
		t.Fatalf("err %v, want *RetryError", err)
	}
	if calls != 1 || re.Reason != "canceled" || re.Class.Kind != rebound.KindPermanent {
		t.Errorf("caller cancel: calls=%d reason=%q kind=%s, want 1, canceled, permanent", calls, re.Reason, re.Class.Kind)
	}
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err %v does not unwrap to Canceled", err)
	}
}

func TestClassifyStatusTable(t *testing.T) {
	ra := 7 * time.Second
	tests := []struct {
		code       int
		idempotent bool
		retryAfter time.Duration
		kind       rebound.Kind
		wantRA     time.Duration
	}{
		{200, true, 0, rebound.KindNone, 0},
		{204, false, 0, rebound.KindNone, 0},
		{301, true, 0, rebound.KindNone, 0},
		{304, true, 0, rebound.KindNone, 0},
		{400, true, 0, rebound.KindPermanent, 0},
		{401, true, 0, rebound.KindPermanent, 0},
		{403, true, 0, rebound.KindPermanent, 0},
		{404, true, 0, rebound.KindPermanent, 0},
		{405, true, 0, rebound.KindPermanent, 0},
		{408, true, 0, rebound.KindTransient, 0},
		{408, false, 0, rebound.KindTransient, 0},
		{409, true, 0, rebound.KindPermanent, 0},
		{410, true, 0, rebound.KindPermanent, 0},
		{412, true, 0, rebound.KindPermanent, 0},
		{422, true, 0, rebound.KindPermanent, 0},
		{429, true, 0, rebound.KindThrottled, 0},
		{429, false, ra, rebound.KindThrottled, ra},
		{500, true, 0, rebound.KindTransient, 0},
		{500, false, 0, rebound.KindPermanent, 0},
		{501, true, 0, rebound.KindPermanent, 0},
		{502, true, 0, rebound.KindTransient, 0},
		{502, false, 0, rebound.KindTransient, 0},
		{503, true, 0, rebound.KindTransient, 0},
		{503, true, ra, rebound.KindThrottled, ra},
		{503, false, ra, rebound.KindThrottled, ra},
		{504, false, 0, rebound.KindTransient, 0},
		{505, true, 0, rebound.KindPermanent, 0},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d/idem=%v/ra=%s", tt.code, tt.idempotent, tt.retryAfter), func(t *testing.T) {
			c := rebound.ClassifyStatus(tt.code, tt.idempotent, tt.retryAfter)
			if c.Kind != tt.kind || c.RetryAfter != tt.wantRA {
				t.Errorf("ClassifyStatus = %+v, want kind %s retryAfter %s", c, tt.kind, tt.wantRA)
			}
			if tt.kind != rebound.KindNone && c.Reason != fmt.Sprintf("http %d", tt.code) {
				t.Errorf("reason %q", c.Reason)
			}
		})
	}
}

func TestIdempotentMethod(t *testing.T) {
	for m, want := range map[string]bool{
		"GET": true, "HEAD": true, "OPTIONS": true, "TRACE": true, "PUT": true, "DELETE": true, "": true,
		"POST": false, "PATCH": false, "CONNECT": false, "get": false,
	} {
		if got := rebound.IdempotentMethod(m); got != want {
			t.Errorf("IdempotentMethod(%q) = %v, want %v", m, got, want)
		}
	}
}

type selfClassed struct{ c rebound.Class }

func (e selfClassed) Error() string        { return "self-classed" }
func (e selfClassed) Class() rebound.Class { return e.c }

func TestClassifyWrappersAndClassed(t *testing.T) {
	base := errors.New("boom")
	reset := &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}
	tests := []struct {
		name   string
		err    error
		kind   rebound.Kind
		reason string
	}{
		{"nil", nil, rebound.KindNone, ""},
		{"plain error", base, rebound.KindTransient, "error"},
		{"Permanent", rebound.Permanent(base), rebound.KindPermanent, "marked permanent"},
		{"Transient", rebound.Transient(rebound.Permanent(base)), rebound.KindTransient, "marked transient"},
		{"Permanent wraps reset", rebound.Permanent(reset), rebound.KindPermanent, "marked permanent"},
		{"Throttled", rebound.Throttled(base, 3*time.Second), rebound.KindThrottled, "marked throttled"},
		{"fmt wrapped Permanent", fmt.Errorf("op: %w", rebound.Permanent(base)), rebound.KindPermanent, "marked permanent"},
		{"reset wrapped twice", fmt.Errorf("a: %w", fmt.Errorf("b: %w", reset)), rebound.KindTransient, "connection reset"},
		{"joined: first recognised wins", errors.Join(base, rebound.Permanent(base)), rebound.KindPermanent, "marked permanent"},
		{"joined reset then permanent", errors.Join(reset, rebound.Permanent(base)), rebound.KindTransient, "connection reset"},
		{"custom Classed", fmt.Errorf("w: %w", selfClassed{rebound.Class{Kind: rebound.KindThrottled, RetryAfter: time.Minute, Reason: "mine"}}), rebound.KindThrottled, "mine"},
		{"canceled", fmt.Errorf("x: %w", context.Canceled), rebound.KindPermanent, "canceled"},
		{"deadline", context.DeadlineExceeded, rebound.KindTransient, "timeout"},
		{"ErrOpen", rebound.ErrOpen, rebound.KindPermanent, "circuit open"},
		{"OpenError", &rebound.OpenError{Name: "x"}, rebound.KindPermanent, "circuit open"},
		{"budget", rebound.ErrBudgetExhausted, rebound.KindPermanent, "retry budget exhausted"},
		{"net.ErrClosed", fmt.Errorf("x: %w", net.ErrClosed), rebound.KindTransient, "connection closed"},
		{"EPIPE", &net.OpError{Op: "write", Err: os.NewSyscallError("write", syscall.EPIPE)}, rebound.KindTransient, "broken pipe"},
		{"unknown errno in OpError", &net.OpError{Op: "dial", Err: os.NewSyscallError("x", syscall.EINVAL)}, rebound.KindTransient, "network dial"},
		{"dns not found", &net.DNSError{Err: "no such host", Name: "x.invalid", IsNotFound: true}, rebound.KindPermanent, "dns not found"},
		{"dns temporary", &net.DNSError{Err: "server misbehaving", Name: "x", IsTemporary: true}, rebound.KindTransient, "dns"},
		{"dns timeout", &net.DNSError{Err: "i/o timeout", Name: "x", IsTimeout: true}, rebound.KindTransient, "dns"},
		{"Throttled negative wait", rebound.Throttled(base, -time.Second), rebound.KindThrottled, "marked throttled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := rebound.Classify(tt.err)
			if c.Kind != tt.kind || c.Reason != tt.reason {
				t.Errorf("Classify(%v) = %s %q, want %s %q", tt.err, c.Kind, c.Reason, tt.kind, tt.reason)
			}
		})
	}
	if c := rebound.Classify(rebound.Throttled(base, -time.Second)); c.RetryAfter != 0 {
		t.Errorf("negative Throttled wait kept: %s", c.RetryAfter)
	}
	if rebound.Permanent(nil) != nil || rebound.Transient(nil) != nil || rebound.Throttled(nil, time.Second) != nil {
		t.Error("marking a nil error made a non-nil one")
	}
	if !errors.Is(rebound.Permanent(base), base) {
		t.Error("Permanent hides its cause from errors.Is")
	}
	if rebound.Permanent(base).Error() != "boom" {
		t.Error("Permanent changed the message")
	}
}

func TestClassifyAllocatesNothing(t *testing.T) {
	err := fmt.Errorf("get: %w", &url.Error{Op: "Get", URL: "http://x", Err: &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}})
	if n := testing.AllocsPerRun(100, func() { rebound.Classify(err) }); n != 0 {
		t.Errorf("Classify allocates %v times", n)
	}
}

func TestKindStrings(t *testing.T) {
	for k, s := range map[rebound.Kind]string{rebound.KindNone: "none", rebound.KindTransient: "transient", rebound.KindThrottled: "throttled", rebound.KindPermanent: "permanent"} {
		if k.String() != s {
			t.Errorf("%d.String() = %q, want %q", k, k.String(), s)
		}
	}
	if rebound.KindNone.Retryable() || rebound.KindPermanent.Retryable() || !rebound.KindTransient.Retryable() || !rebound.KindThrottled.Retryable() {
		t.Error("Retryable is wrong")
	}
}

func TestCustomClassifierInRetry(t *testing.T) {
	errQuota := errors.New("quota exceeded")
	calls := 0
	var seen []rebound.Class
	r := rebound.Retry{
		Backoff: rebound.NoDelay,
		// Our own rule first (quota errors are permanent), then the default.
		Classify: func(err error) rebound.Class {
			if errors.Is(err, errQuota) {
				return rebound.Class{Kind: rebound.KindPermanent, Reason: "quota"}
			}
			return rebound.Classify(err)
		},
		OnRetry: func(e rebound.RetryEvent) { seen = append(seen, e.Class) },
	}
	err := r.Do(context.Background(), func(context.Context) error {
		calls++
		if calls == 1 {
			return syscall.ECONNRESET
		}
		return fmt.Errorf("call: %w", errQuota)
	})
	var re *rebound.RetryError
	if !errors.As(err, &re) || re.Class.Reason != "quota" || calls != 2 {
		t.Fatalf("err %v, calls %d: want a RetryError with the custom class after 2 calls", err, calls)
	}
	if len(seen) != 1 || seen[0].Reason != "connection reset" {
		t.Errorf("OnRetry saw %+v, want one connection reset", seen)
	}
}
