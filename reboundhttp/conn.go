package reboundhttp

import (
	"context"
	"errors"
	"net"
	"os"
	"sync/atomic"
	"time"
)

// stallConn enforces the body stall timeout on the connections of the
// transport we build ourselves, where it is exact and free: it bounds the
// silence of the server in bytes received, below any chunked or gzip
// decoding (a body reader may wait for a whole chunk while bytes trickle in),
// and costs nothing per request, only a deadline update per read.
//
// Each Read may wait at most stall for the next bytes (0: no limit). After a
// Write (a request goes out) the wait for the response's first byte may last
// first instead (0: no limit): the response header timeout. An idle pooled
// connection is read by the transport too, so it is closed after stall of
// idleness; the transport simply dials again.
//
// A deadline that someone else sets (crypto/tls interrupts a handshake with
// a deadline in the past) is remembered and always wins over ours.
type stallConn struct {
	net.Conn
	stall    time.Duration
	first    time.Duration
	awaiting atomic.Bool  // a request went out; no byte of its response yet
	external atomic.Int64 // a read deadline set by others, in Unix ns; 0 none
}

// stallDialer wraps dial so that every connection is a stallConn.
func stallDialer(dial func(ctx context.Context, network, addr string) (net.Conn, error), stall, first time.Duration) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &stallConn{Conn: c, stall: stall, first: first}, nil
	}
}

// setOurs sets the read deadline to d from now (none for 0), unless an
// external deadline comes sooner. It reports whether ours is the one set.
func (c *stallConn) setOurs(d time.Duration) (bool, error) {
	var dl time.Time
	if d > 0 {
		dl = time.Now().Add(d)
	}
	if ext := c.external.Load(); ext != 0 && (dl.IsZero() || ext < dl.UnixNano()) {
		return false, c.Conn.SetReadDeadline(time.Unix(0, ext))
	}
	return d > 0, c.Conn.SetReadDeadline(dl)
}

func (c *stallConn) Read(p []byte) (int, error) {
	waiting := c.awaiting.Load()
	d := c.stall
	if waiting {
		d = c.first
	}
	ours, err := c.setOurs(d)
	if err != nil {
		return 0, err
	}
	if !waiting && c.first != c.stall && c.awaiting.Load() {
		// A Write began in between and set the first-byte deadline, which
		// ours may have overwritten: set it again.
		d = c.first
		if ours, err = c.setOurs(d); err != nil {
			return 0, err
		}
	}
	n, err := c.Conn.Read(p)
	// The read may have begun before the request went out (the transport
	// reads idle connections), so look at the flag again.
	if n > 0 && c.awaiting.Load() {
		c.awaiting.Store(false)
	}
	if err != nil && ours && errors.Is(err, os.ErrDeadlineExceeded) {
		err = &stallError{d}
	}
	return n, err
}

func (c *stallConn) Write(p []byte) (int, error) {
	if !c.awaiting.Load() {
		c.awaiting.Store(true)
	}
	// A read already waiting (the transport reads idle connections) gets the
	// first-byte allowance from now.
	if _, err := c.setOurs(c.first); err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}

// SetDeadline records t as an external read deadline, then sets it.
func (c *stallConn) SetDeadline(t time.Time) error {
	c.setExternal(t)
	return c.Conn.SetDeadline(t)
}

// SetReadDeadline records t as an external read deadline, then sets it.
func (c *stallConn) SetReadDeadline(t time.Time) error {
	c.setExternal(t)
	return c.Conn.SetReadDeadline(t)
}

func (c *stallConn) setExternal(t time.Time) {
	var ns int64
	if !t.IsZero() {
		ns = max(t.UnixNano(), 1)
	}
	c.external.Store(ns)
}
