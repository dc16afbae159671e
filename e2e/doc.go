// Package e2e holds rebound's end-to-end tests against real peers: network
// faults from toxiproxy (run in-process), real servers, real processes. It is
// its own module so that the library's go.mod stays small.
package e2e
