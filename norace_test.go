//go:build !race

package rebound_test

const raceEnabled = false
