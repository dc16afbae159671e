package cli

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rebound-go/rebound/transfer"
)

// Exit codes of get and upload: 0 done, 1 failed for good, 2 bad input.
func TestTransferExitCodes(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/missing" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("ETag", `"x"`)
		w.Write([]byte("hello"))
	}))
	defer srv.Close()
	dir, state := t.TempDir(), t.TempDir()
	src := filepath.Join(dir, "src")
	os.WriteFile(src, []byte("data"), 0o644)
	taken := t.TempDir() // an output directory where the server's name is taken
	os.WriteFile(filepath.Join(taken, "taken"), []byte("mine"), 0o644)
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"get", srv.URL + "/ok", "-o", filepath.Join(dir, "ok"), "--state-dir", state}, ExitOK, "saved"},
		{[]string{"get", srv.URL + "/missing", "-o", filepath.Join(dir, "m"), "--state-dir", state}, ExitFailed, "404"},
		{[]string{"get", "ftp://x/y", "--state-dir", state}, ExitUsage, "not an http(s) URL"},
		{[]string{"get", srv.URL, "--sha256", "xyz", "--state-dir", state}, ExitUsage, "--sha256 must be 64 hex digits"},
		// The library names its own API; the command line adds its flag.
		{[]string{"get", srv.URL + "/taken", "-o", taken, "--state-dir", state}, ExitUsage, "hint: choose the output with -o FILE"},
		{[]string{"get", srv.URL, "-o", filepath.Join(dir, "no/such/dir/f"), "--state-dir", state}, ExitUsage, "does not exist"},
		{[]string{"get", srv.URL, "-H", "bad header", "--state-dir", state}, ExitUsage, "header"},
		{[]string{"get"}, ExitUsage, "arg"},
		{[]string{"upload", filepath.Join(dir, "nope"), srv.URL, "--state-dir", state}, ExitUsage, "no such file"},
		{[]string{"upload", src, srv.URL, "--chunk-size", "0", "--state-dir", state}, ExitUsage, "chunk-size"},
		{[]string{"upload", src, srv.URL, "--chunk-size", "8XB", "--state-dir", state}, ExitUsage, "chunk-size"},
		{[]string{"upload", src, "notaurl", "--state-dir", state}, ExitUsage, "not an http(s) URL"},
		{[]string{"upload", src, srv.URL, "--metadata", "novalue", "--state-dir", state}, ExitUsage, "key=value"},
	} {
		var out, errb bytes.Buffer
		code := Main(tc.args, nil, &out, &errb)
		if code != tc.code || !strings.Contains(out.String()+errb.String(), tc.msg) {
			t.Errorf("%q: exit %d, want %d; output %q, want it to mention %q", tc.args, code, tc.code, out.String()+errb.String(), tc.msg)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "ok")); string(b) != "hello" {
		t.Errorf("downloaded %q", b)
	}
}

// With --json, a failed transfer's last event says why and with which exit
// code, so a script that reads the events need not parse stderr.
func TestTransferJSONErrorEvent(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"get", srv.URL + "/missing", "-o", filepath.Join(dir, "m"), "--json"}, ExitFailed},
		{[]string{"get", srv.URL, "-o", filepath.Join(dir, "no/such/dir/f"), "--json"}, ExitUsage},
	} {
		var out, errb bytes.Buffer
		code := Main(append(tc.args, "--state-dir", t.TempDir()), nil, &out, &errb)
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		var last struct {
			Event    string `json:"event"`
			Error    string `json:"error"`
			ExitCode int    `json:"exit_code"`
		}
		if err := json.Unmarshal([]byte(lines[len(lines)-1]), &last); err != nil {
			t.Fatalf("%q: last line %q: %v", tc.args, lines[len(lines)-1], err)
		}
		if code != tc.code || last.Event != "error" || last.ExitCode != tc.code || last.Error == "" {
			t.Errorf("%q: exit %d, last event %+v; want an error event with exit code %d", tc.args, code, last, tc.code)
		}
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"8MiB": 8 << 20, "512KiB": 512 << 10, "1GB": 1e9, "1048576": 1 << 20, "10 MB": 10e6, "7B": 7} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "MiB", "-1x", "1.5MiB", "99999999999GiB"} {
		if _, err := parseSize(bad); err == nil {
			t.Errorf("parseSize(%q) accepted", bad)
		}
	}
}

// On a non-terminal, a transfer's last progress line is not printed twice
// (once for the final progress event, once for done).
func TestPlainProgressLastLineOnce(t *testing.T) {
	var out, errb bytes.Buffer
	p := newProgress(&out, &errb, false, "get")
	p.event(transfer.Event{Type: transfer.EventStart, Total: -1})
	p.event(transfer.Event{Type: transfer.EventProgress, Done: 5, Total: 5})
	p.event(transfer.Event{Type: transfer.EventDone, Done: 5, Total: 5})
	p.close(true)
	if n := strings.Count(errb.String(), "5 B of 5 B"); n != 1 {
		t.Fatalf("the final count was shown %d times, want 1:\n%s", n, errb.String())
	}
	// A done event that says more than the last line is still shown.
	errb.Reset()
	p = newProgress(&out, &errb, false, "get")
	p.event(transfer.Event{Type: transfer.EventProgress, Done: 1, Total: 5})
	p.event(transfer.Event{Type: transfer.EventDone, Done: 5, Total: 5})
	if !strings.Contains(errb.String(), "5 B of 5 B (100%)") {
		t.Fatalf("done line missing:\n%s", errb.String())
	}
}

// After a restart from byte 0 the rate and ETA count from the restart: the
// time spent on the discarded bytes is not the new transfer's.
func TestPlainProgressRateAfterRestart(t *testing.T) {
	var out, errb bytes.Buffer
	p := newProgress(&out, &errb, false, "get")
	p.start = time.Now().Add(-time.Hour) // an hour spent on a download the server then restarted
	p.event(transfer.Event{Type: transfer.EventRestart, Reason: "the file changed"})
	p.event(transfer.Event{Type: transfer.EventProgress, Done: 1 << 20, Total: 2 << 20})
	line := strings.TrimSpace(errb.String()[strings.LastIndex(strings.TrimSpace(errb.String()), "\n")+1:])
	i := strings.LastIndex(line, "ETA ")
	if i < 0 {
		t.Fatalf("no ETA in %q", line)
	}
	eta, err := time.ParseDuration(line[i+4:])
	if err != nil || eta > 10*time.Minute {
		t.Fatalf("ETA %v (%v) in %q: the hour before the restart was counted", eta, err, line)
	}
}

// When the default state directory (in the user cache dir) cannot be made,
// the error says how to put it elsewhere.
func TestTransferDefaultStateDirUnusable(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("XDG_CACHE_HOME", filepath.Join(file, "cache")) // under a file: mkdir fails
	code, _, errOut := cliRun("get", "http://127.0.0.1:1/x", "-o", filepath.Join(t.TempDir(), "o"))
	if code != ExitUsage || !strings.Contains(errOut, "--state-dir") {
		t.Fatalf("exit %d, stderr %q; want 2 and a hint to pass --state-dir", code, errOut)
	}
}
