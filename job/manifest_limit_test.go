package job

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/rebound-go/rebound/checkpoint"
)

// lineOfLen returns a valid manifest line of exactly n bytes.
func lineOfLen(t testing.TB, id string, n int) string {
	t.Helper()
	head := `{"id":"` + id + `","url":"http://h/","body":"`
	const tail = `"}`
	if pad := n - len(head) - len(tail); pad >= 0 {
		return head + strings.Repeat("x", pad) + tail
	}
	t.Fatalf("no line of %d bytes", n)
	return ""
}

// The line limit counts a line without its ending: a line of exactly
// MaxLine bytes is accepted, and one byte more refused, with an LF, a CRLF
// or no ending at all (the last line), and every accepted line fits in an
// item's payload.
func TestManifestLineLimitSameForEveryEnding(t *testing.T) {
	for _, ending := range []string{"\n", "\r\n", ""} {
		for _, n := range []int{MaxLine - 1, MaxLine, MaxLine + 1, MaxLine + 2} {
			t.Run(fmt.Sprintf("%q/%d", ending, n-MaxLine), func(t *testing.T) {
				data := lineOfLen(t, "a", n) + ending
				var got []byte
				err := ScanManifest(strings.NewReader(data), "m", "", func(_ int, _ Request, raw []byte) error {
					got = raw
					return nil
				})
				accepted := err == nil && got != nil
				if want := n <= MaxLine; accepted != want {
					t.Fatalf("line of %d bytes (limit %d) ending %q: accepted %v (err %v), want %v", n, MaxLine, ending, accepted, err, want)
				}
				if accepted && len(got) > checkpoint.MaxPayloadLen {
					t.Fatalf("accepted a line of %d bytes, more than an item's payload (%d)", len(got), checkpoint.MaxPayloadLen)
				}
				if !accepted && (err == nil || !strings.Contains(err.Error(), "longer than")) {
					t.Fatalf("refused with %v, want a line error saying it is too long", err)
				}
			})
		}
	}
}

// scanVerdicts scans data and returns the accepted lines (number and raw)
// and the refused line numbers.
func scanVerdicts(data []byte) (accepted []string, refused []int) {
	err := ScanManifest(bytes.NewReader(data), "fuzz", "", func(line int, _ Request, raw []byte) error {
		accepted = append(accepted, fmt.Sprintf("%d:%s", line, raw))
		return nil
	})
	if merr, ok := err.(*ManifestError); ok {
		for _, l := range merr.Lines {
			refused = append(refused, l.Line)
		}
	}
	return accepted, refused
}

// FuzzManifestLineEndings: whether a line is accepted, and what is stored
// for it, does not depend on the file's line endings (LF or CRLF), and no
// accepted line is larger than an item's payload, so every line the scan
// accepts can be stored and sent.
func FuzzManifestLineEndings(f *testing.F) {
	f.Add([]byte(`{"id":"a","url":"http://h/"}` + "\n" + `{"id":"b","url":"http://h/"}`))
	f.Add([]byte(lineOfLen(f, "a", MaxLine) + "\n" + lineOfLen(f, "b", MaxLine+1) + "\n" + lineOfLen(f, "c", MaxLine)))
	f.Add([]byte("#c\n\n{\"id\":\"x\",\"url\":\"http://h/\"} \t\n" + lineOfLen(f, "d", MaxLine-1)))
	f.Fuzz(func(t *testing.T, data []byte) {
		lf := bytes.ReplaceAll(data, []byte("\r"), nil)
		crlf := bytes.ReplaceAll(lf, []byte("\n"), []byte("\r\n"))
		accLF, refLF := scanVerdicts(lf)
		accCRLF, refCRLF := scanVerdicts(crlf)
		if !slices.Equal(accLF, accCRLF) || !slices.Equal(refLF, refCRLF) {
			t.Fatalf("LF and CRLF disagree: %d vs %d lines accepted, refused lines %v vs %v", len(accLF), len(accCRLF), refLF, refCRLF)
		}
		for _, a := range accLF {
			_, raw, _ := strings.Cut(a, ":")
			if len(raw) > checkpoint.MaxPayloadLen {
				t.Fatalf("accepted a line of %d bytes, more than an item's payload (%d)", len(raw), checkpoint.MaxPayloadLen)
			}
		}
	})
}
