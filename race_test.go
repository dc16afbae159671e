//go:build race

package rebound_test

// raceEnabled scales down simulations that would take minutes under the
// race detector; the code paths they exercise stay the same.
const raceEnabled = true
