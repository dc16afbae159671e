package job

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestScanManifestValid(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "b.bin"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	in := strings.Join([]string{
		`{"id":"a","url":"http://127.0.0.1/x"}`,
		``,
		`# a comment`,
		`{"id":"b","method":"POST","url":"https://h/y","headers":{"X-A":"1"},"body":{"k":1}}`,
		`{"id":"c","method":"PUT","url":"http://h/z","body":"plain text"}`,
		`{"id":"d","method":"PUT","url":"http://h/z","body_file":"b.bin"}`,
	}, "\n")
	var got []Request
	err := ScanManifest(strings.NewReader(in), "m.jsonl", dir, func(line int, r Request, raw []byte) error {
		got = append(got, r)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 || got[0].Method != "GET" || got[1].Headers["X-A"] != "1" {
		t.Fatalf("got %+v", got)
	}
	body, isJSON, err := got[1].BodyBytes()
	if err != nil || !isJSON || string(body) != `{"k":1}` {
		t.Fatalf("json body %q %v %v", body, isJSON, err)
	}
	body, isJSON, err = got[2].BodyBytes()
	if err != nil || isJSON || string(body) != "plain text" {
		t.Fatalf("string body %q %v %v", body, isJSON, err)
	}
	if p := got[3].BodyPath(dir); p != filepath.Join(dir, "b.bin") {
		t.Fatalf("body path %q", p)
	}
}

func TestScanManifestBadLines(t *testing.T) {
	lines := []struct{ line, want string }{
		{`{"url":"http://h/"}`, `missing "id"`},
		{`{"id":"x"}`, `missing "url"`},
		{`{"id":"x","url":"ftp://h/"}`, "scheme must be http or https"},
		{`{"id":"x","url":"/relative"}`, `url "/relative" is not absolute`},
		{`{"id":"x","url":"//u:s3cret@h/p"}`, `url "//h/p" is not absolute`},
		{`{"id":"x","url":"http:///p"}`, "has no host"},
		{`{"id":"x","url":"http://h/","method":"GE T"}`, "not a valid HTTP method"},
		{`{"id":"x","url":"http://h/","body":"a","body_file":"f"}`, "both set"},
		{`{"id":"x","url":"http://h/","body_file":"missing.bin"}`, "body_file"},
		{`{"id":"x","url":"http://h/","colour":"red"}`, "unknown field"},
		{`not json`, "not a JSON object"},
		{`{"id":"x","url":"http://h/"} {"id":"y"}`, "more than one JSON value"},
		{`{"id":"x","url":"http://user:pw@h/?token=s3cret","method":"B@D"}`, "not a valid HTTP method"},
		{`{"id":"x","url":"ftp://user:pw@h/p?token=s3cret"}`, `"ftp://h/p"`},
	}
	var in []string
	for _, l := range lines {
		in = append(in, l.line)
	}
	called := 0
	err := ScanManifest(strings.NewReader(strings.Join(in, "\n")), "m.jsonl", t.TempDir(), func(int, Request, []byte) error {
		called++
		return nil
	})
	var merr *ManifestError
	if !errors.As(err, &merr) {
		t.Fatalf("want *ManifestError, got %v", err)
	}
	if called != 0 {
		t.Fatalf("fn called %d times for bad lines", called)
	}
	if len(merr.Lines) != len(lines) {
		t.Fatalf("got %d bad lines, want %d: %v", len(merr.Lines), len(lines), err)
	}
	for i, l := range lines {
		le := merr.Lines[i]
		if le.Line != i+1 || !strings.Contains(le.Err.Error(), l.want) {
			t.Errorf("line %d: got %v, want %q", i+1, le, l.want)
		}
	}
	if strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), "pw@") {
		t.Errorf("error leaks URL secrets: %v", err)
	}
	// The causes stay inspectable: the missing body_file is fs.ErrNotExist.
	var le LineError
	if !errors.Is(err, fs.ErrNotExist) || !errors.As(err, &le) || le.Line != 1 {
		t.Errorf("errors.Is(err, fs.ErrNotExist) = %v, first LineError %+v; want the body_file's cause reachable", errors.Is(err, fs.ErrNotExist), le)
	}
}

func TestScanManifestCapsReportAndLongLines(t *testing.T) {
	var b strings.Builder
	for range 25 {
		b.WriteString("{}\n")
	}
	b.WriteString(`{"id":"big","url":"http://h/","body":"` + strings.Repeat("a", MaxLine) + "\"}\n")
	b.WriteString(`{"id":"ok","url":"http://h/"}` + "\n")
	var ids []string
	err := ScanManifest(strings.NewReader(b.String()), "m", "", func(_ int, r Request, _ []byte) error {
		ids = append(ids, r.ID)
		return nil
	})
	var merr *ManifestError
	if !errors.As(err, &merr) || len(merr.Lines) != 20 || merr.More != 6 {
		t.Fatalf("got %v", err)
	}
	if len(ids) != 1 || ids[0] != "ok" {
		t.Fatalf("the line after a too-long line was not read: %v", ids)
	}
	if !strings.Contains(err.Error(), "and 6 more") {
		t.Fatalf("message: %v", err)
	}
}

func FuzzScanManifest(f *testing.F) {
	f.Add([]byte(`{"id":"a","url":"http://h/"}` + "\n"))
	f.Add([]byte(`{"id":"a","url":"http://h/","body":{"x":[1,2]},"headers":{"A":"b"}}`))
	f.Add([]byte("\n\n#x\n{\"id\":\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_ = ScanManifest(strings.NewReader(string(data)), "fuzz", "", func(_ int, r Request, _ []byte) error {
			if r.ID == "" || r.URL == "" || r.Method == "" {
				t.Fatalf("invalid request accepted: %+v", r)
			}
			_, _, _ = r.BodyBytes()
			return nil
		})
	})
}
