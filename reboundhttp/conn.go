package reboundhttp

import (
	"context"
	"errors"
	"net"
	"os"
	"sync"
	"time"
)

// stallConn enforces the body stall timeout on the connections of the
// transport we build ourselves, where it is exact and free: it bounds the
// silence of the server in bytes received, below any chunked or gzip
// decoding (a body reader may wait for a whole chunk while bytes trickle in),
// and costs nothing per request but a clock read per Read and now and then a
// deadline update.
//
// Each Read may wait stall for the next bytes (0: no limit). After a Write
// (a request goes out) the wait for the response's first byte may last
// first instead (0: no limit): the response header timeout. To spare a
// deadline update (a few hundred ns) on every Read, a deadline is set with
// 1/8 of slack and kept while it still falls within [now+d, now+d+d/8]: a
// silent server is cut after d to 9/8·d. An idle pooled connection is read
// by the transport too, so it is closed after that long idle; the transport
// simply dials again.
//
// A deadline that someone else sets (crypto/tls interrupts a handshake with
// a deadline in the past) always wins over ours.
type stallConn struct {
	net.Conn
	stall, first time.Duration

	mu       sync.Mutex
	awaiting bool  // a request went out; no byte of its response yet
	until    int64 // the read deadline we set, in Unix ns; 0 none
	external int64 // a read deadline set by others, in Unix ns; 0 none
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

// limitLocked makes the read deadline now+d (with slack; none for 0), unless
// an external deadline comes sooner. It returns the limit that applies to
// the next read, or 0 when the external deadline (or none) does.
func (c *stallConn) limitLocked(d time.Duration) (time.Duration, error) {
	if c.external != 0 {
		// The external deadline is the conn's deadline; ours only if sooner.
		if d <= 0 || c.external < time.Now().Add(d).UnixNano() {
			return 0, nil
		}
	}
	if d <= 0 {
		if c.until == 0 {
			return 0, nil
		}
		c.until = 0
		return 0, c.Conn.SetReadDeadline(time.Time{})
	}
	want := time.Now().Add(d).UnixNano()
	slack := int64(d / 8)
	if c.external == 0 && c.until >= want && c.until <= want+slack {
		return d, nil // the deadline in place still fits
	}
	c.until = want + slack
	return d, c.Conn.SetReadDeadline(time.Unix(0, c.until))
}

func (c *stallConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	d := c.stall
	if c.awaiting {
		d = c.first
	}
	limit, err := c.limitLocked(d)
	c.mu.Unlock()
	if err != nil {
		return 0, err
	}
	n, err := c.Conn.Read(p)
	if n > 0 {
		// The read may have begun before the request went out (the transport
		// reads idle connections), so the flag is looked at only now.
		c.mu.Lock()
		c.awaiting = false
		c.mu.Unlock()
	}
	if err != nil && limit > 0 && errors.Is(err, os.ErrDeadlineExceeded) {
		// Unless someone else's deadline, set meanwhile, is what ran out.
		c.mu.Lock()
		ours := c.external == 0 || c.external > time.Now().UnixNano()
		c.mu.Unlock()
		if ours {
			err = &stallError{limit}
		}
	}
	return n, err
}

func (c *stallConn) Write(p []byte) (int, error) {
	// A read already waiting (the transport reads idle connections) gets the
	// first-byte allowance from now.
	c.mu.Lock()
	c.awaiting = true
	_, err := c.limitLocked(c.first)
	c.mu.Unlock()
	if err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}

// SetDeadline records t as an external read deadline, then sets it.
func (c *stallConn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.setExternalLocked(t)
	return c.Conn.SetDeadline(t)
}

// SetReadDeadline records t as an external read deadline, then sets it.
func (c *stallConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.setExternalLocked(t)
	return c.Conn.SetReadDeadline(t)
}

// setExternalLocked records an external deadline, which replaces ours.
func (c *stallConn) setExternalLocked(t time.Time) {
	c.external = 0
	if !t.IsZero() {
		c.external = max(t.UnixNano(), 1)
	}
	c.until = 0
}
