// Command benchtable reads `go test -bench` output on stdin and prints a
// Markdown table of the medians: one row per scenario (the benchmark's name),
// one column per library (the sub-benchmark's name up to any "+", so a
// pairing such as "backoff+gobreaker" lands in the "backoff" column), each
// cell "ns/op / allocs/op", and a last column with rebound's ns/op divided by
// the fastest other library's in the same row.
//
// Usage: go test -run '^$' -bench . -count 5 | benchtable
package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

func main() {
	t, err := parse(os.Stdin)
	if err == nil && len(t.rows) == 0 {
		err = fmt.Errorf("no benchmark results on stdin")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchtable:", err)
		os.Exit(1)
	}
	t.write(os.Stdout)
}

// The reference library, whose ratio the last column gives.
const reference = "rebound"

// A result line: name/sub-GOMAXPROCS, iterations, ns/op, then optional metrics.
var line = regexp.MustCompile(`^Benchmark([^/\s]+)/(\S+?)(?:-\d+)?\s+\d+\s+([0-9.e+]+) ns/op(.*)$`)
var allocs = regexp.MustCompile(`([0-9.]+) allocs/op`)

type sample struct{ ns, allocs []float64 }

type table struct {
	rows, cols []string              // in order of first appearance
	cells      map[[2]string]*sample // {row, col}
	paired     []string              // full names of pairings seen, e.g. "backoff+gobreaker"
}

func parse(r io.Reader) (*table, error) {
	t := &table{cells: map[[2]string]*sample{}}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		m := line.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		row, lib := m[1], m[2]
		col, _, paired := strings.Cut(lib, "+")
		if paired && !slices.Contains(t.paired, lib) {
			t.paired = append(t.paired, lib)
		}
		ns, err := strconv.ParseFloat(m[3], 64)
		if err != nil {
			return nil, fmt.Errorf("bad ns/op in %q: %v", sc.Text(), err)
		}
		if !slices.Contains(t.rows, row) {
			t.rows = append(t.rows, row)
		}
		if !slices.Contains(t.cols, col) {
			t.cols = append(t.cols, col)
		}
		s := t.cells[[2]string{row, col}]
		if s == nil {
			s = &sample{}
			t.cells[[2]string{row, col}] = s
		}
		s.ns = append(s.ns, ns)
		if a := allocs.FindStringSubmatch(m[4]); a != nil {
			v, err := strconv.ParseFloat(a[1], 64)
			if err != nil {
				return nil, fmt.Errorf("bad allocs/op in %q: %v", sc.Text(), err)
			}
			s.allocs = append(s.allocs, v)
		}
	}
	// The reference first, the others as they came.
	if i := slices.Index(t.cols, reference); i > 0 {
		t.cols = append([]string{reference}, slices.Delete(t.cols, i, i+1)...)
	}
	return t, sc.Err()
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// ratio returns the reference's median ns/op over the fastest other
// library's in row, and that library; ok is false if either is missing.
func (t *table) ratio(row string) (r float64, fastest string, ok bool) {
	ref := t.cells[[2]string{row, reference}]
	if ref == nil {
		return 0, "", false
	}
	best := 0.0
	for _, c := range t.cols {
		s := t.cells[[2]string{row, c}]
		if c == reference || s == nil {
			continue
		}
		if m := median(s.ns); fastest == "" || m < best {
			best, fastest = m, c
		}
	}
	if fastest == "" || best == 0 {
		return 0, "", false
	}
	return median(ref.ns) / best, fastest, true
}

func (t *table) write(w io.Writer) {
	fmt.Fprint(w, "| scenario |")
	for _, c := range t.cols {
		fmt.Fprintf(w, " %s |", c)
	}
	fmt.Fprintln(w, " rebound ÷ fastest other |")
	fmt.Fprint(w, "| --- |")
	for range t.cols {
		fmt.Fprint(w, " ---: |")
	}
	fmt.Fprintln(w, " ---: |")
	for _, row := range t.rows {
		fmt.Fprintf(w, "| %s |", row)
		for _, c := range t.cols {
			s := t.cells[[2]string{row, c}]
			if s == nil {
				fmt.Fprint(w, " – |")
				continue
			}
			a := "?"
			if len(s.allocs) > 0 {
				a = strconv.FormatFloat(median(s.allocs), 'f', -1, 64)
			}
			fmt.Fprintf(w, " %s ns / %s |", formatNs(median(s.ns)), a)
		}
		if r, fastest, ok := t.ratio(row); ok {
			fmt.Fprintf(w, " %.2f× (vs %s) |\n", r, fastest)
		} else {
			fmt.Fprintln(w, " – |")
		}
	}
	n := 0
	for _, s := range t.cells {
		n = max(n, len(s.ns))
	}
	fmt.Fprintf(w, "\nCells: median ns/op / median allocs/op over %d runs; – means not measured.\n", n)
	if len(t.paired) > 0 {
		fmt.Fprintf(w, "Pairings (a retry library wrapping a breaker), shown under the first name: %s.\n", strings.Join(t.paired, ", "))
	}
}

// formatNs keeps three significant figures at most, and no exponent.
func formatNs(v float64) string {
	switch {
	case v >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return strconv.FormatFloat(v, 'f', 2, 64)
}
