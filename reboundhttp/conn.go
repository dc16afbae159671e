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
type stallConn struct {
	net.Conn
	stall    time.Duration
	first    time.Duration
	awaiting atomic.Bool // a request went out; no byte of its response yet
	deadline bool        // a read deadline is set (only Read touches it)
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

func (c *stallConn) Read(p []byte) (int, error) {
	waiting := c.awaiting.Load()
	d := c.stall
	if waiting {
		d = c.first
	}
	switch {
	case d > 0:
		if err := c.Conn.SetReadDeadline(time.Now().Add(d)); err != nil {
			return 0, err
		}
		c.deadline = true
	case c.deadline:
		if err := c.Conn.SetReadDeadline(time.Time{}); err != nil {
			return 0, err
		}
		c.deadline = false
	}
	if !waiting && c.first != c.stall && c.awaiting.Load() {
		// A Write began in between and set the first-byte deadline, which
		// ours may have overwritten: set it again.
		d = c.first
		var dl time.Time
		if d > 0 {
			dl = time.Now().Add(d)
		}
		if err := c.Conn.SetReadDeadline(dl); err != nil {
			return 0, err
		}
		c.deadline = d > 0
	}
	n, err := c.Conn.Read(p)
	// The read may have begun before the request went out (the transport
	// reads idle connections), so look at the flag again.
	if n > 0 && c.awaiting.Load() {
		c.awaiting.Store(false)
	}
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
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
	var dl time.Time
	if c.first > 0 {
		dl = time.Now().Add(c.first)
	}
	if err := c.Conn.SetReadDeadline(dl); err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}
