// Package e2e holds rebound's end-to-end and chaos tests: the real CLI built
// and run as a process (and killed with SIGKILL), real peers (tusd,
// toxiproxy), real network faults. It is its own module so that the
// library's go.mod never depends on those peers.
package e2e
