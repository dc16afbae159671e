package cli

import (
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"
)

// flakyServer answers each request with the next scripted behaviour, or the
// default one when the script is empty.
type flakyServer struct {
	mu       sync.Mutex
	script   []string
	dflt     string
	requests int
}

func (s *flakyServer) set(dflt string, script ...string) {
	s.mu.Lock()
	s.dflt, s.script = dflt, script
	s.mu.Unlock()
}

func (s *flakyServer) next() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests++
	if len(s.script) > 0 {
		b := s.script[0]
		s.script = s.script[1:]
		return b
	}
	return s.dflt
}

func (s *flakyServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch s.next() {
	case "503-retry-after":
		w.Header().Set("Retry-After", "1")
		http.Error(w, "busy", http.StatusServiceUnavailable)
	case "503":
		http.Error(w, "down", http.StatusServiceUnavailable)
	case "404":
		http.Error(w, "no such item", http.StatusNotFound)
	case "reset":
		// Close with SO_LINGER 0: the kernel sends a RST, the client reads
		// "connection reset by peer".
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
		conn.Close()
	case "slow":
		// Answer long after the client's per-attempt timeout (or when it hangs up).
		t := time.NewTimer(10 * time.Second)
		defer t.Stop()
		select {
		case <-r.Context().Done():
			return
		case <-t.C:
		}
		fmt.Fprintln(w, "late")
	default:
		fmt.Fprintln(w, "ok")
	}
}
