package main

import (
	"bytes"
	"strings"
	"testing"
)

const input = `goos: linux
BenchmarkSuccess/rebound-2         	 100	        10.0 ns/op	       0 B/op	       0 allocs/op
BenchmarkSuccess/rebound-2         	 100	        30.0 ns/op	       0 B/op	       0 allocs/op
BenchmarkSuccess/rebound-2         	 100	        12.0 ns/op	       0 B/op	       0 allocs/op
BenchmarkSuccess/failsafe-2        	 100	      1000 ns/op	     576 B/op	      17 allocs/op
BenchmarkSuccess/failsafe-2        	 100	      1200 ns/op	     576 B/op	      17 allocs/op
BenchmarkSuccess/backoff+gobreaker-2 	 100	      40 ns/op	     168 B/op	       4 allocs/op
BenchmarkSuccess/backoff+gobreaker-2 	 100	      60 ns/op	     168 B/op	       4 allocs/op
BenchmarkOpen/gobreaker-2          	 100	      150 ns/op	       0 B/op	       0 allocs/op
PASS
`

func TestTable(t *testing.T) {
	tb, err := parse(strings.NewReader(input))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	tb.write(&out)
	got := out.String()
	for _, want := range []string{
		"| scenario | rebound | failsafe | backoff | gobreaker | rebound ÷ fastest other |",
		// medians: rebound 12 (of 10, 30, 12), failsafe 1100, backoff 50;
		// 12 / 50 = 0.24 against the fastest other, backoff.
		"| Success | 12.0 ns / 0 | 1100 ns / 17 | 50.0 ns / 4 | – | 0.24× (vs backoff) |",
		// no rebound in the row: no ratio.
		"| Open | – | – | – | 150 ns / 0 | – |",
		"over 3 runs",
		"backoff+gobreaker",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
}

func TestParseIgnoresOtherLines(t *testing.T) {
	tb, err := parse(strings.NewReader("PASS\nok  \tx\t1.0s\n--- FAIL: x\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(tb.rows) != 0 {
		t.Fatalf("rows = %v, want none", tb.rows)
	}
}
