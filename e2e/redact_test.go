package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

// The credentials of these tests, and every form a server may echo them in.
const (
	querySecret  = "s3cr3tQ+tok/en=="
	headerSecret = "h3aderKEY-9876"
)

func secretForms(s string) []string {
	j, _ := json.Marshal(s)
	return []string{s, url.QueryEscape(s), url.PathEscape(s), lowerHex(url.QueryEscape(s)), string(j[1 : len(j)-1]),
		"s3cr3tQ", "h3aderKEY"} // the distinctive parts, in case only a piece leaks
}

// noSecrets fails the test if any form of a secret is in out.
func noSecrets(t *testing.T, what, out string) {
	t.Helper()
	for _, s := range []string{querySecret, headerSecret} {
		for _, f := range secretForms(s) {
			if strings.Contains(out, f) {
				t.Errorf("%s shows %q (a form of a secret):\n%s", what, f, out)
				return
			}
		}
	}
}

// jsonStrings returns every string value of out read as one JSON
// document or as JSON lines.
func jsonStrings(out string) []string {
	var all []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case string:
			all = append(all, v)
		case []any:
			for _, x := range v {
				walk(x)
			}
		case map[string]any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	for _, doc := range append([]string{out}, strings.Split(out, "\n")...) {
		var v any
		if json.Unmarshal([]byte(doc), &v) == nil {
			walk(v)
		}
	}
	return all
}

// rawStatusServer answers every request with the status line "HTTP/1.1 "+status
// as it is (net/http writes only the standard reason phrases), and the body.
func rawStatusServer(t *testing.T, status func(r *http.Request) string, body func(r *http.Request) string) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, buf, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		b := body(r)
		fmt.Fprintf(buf, "HTTP/1.1 %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", status(r), len(b), b)
		buf.Flush()
	}))
	t.Cleanup(srv.Close)
	return srv
}

// stateBytes reads every file of the SQLite state in dir (the database, its
// WAL and side files) as one string.
func stateBytes(t *testing.T, dir string) string {
	t.Helper()
	var all strings.Builder
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	if len(files) == 0 {
		t.Fatalf("no state files in %s", dir)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		all.Write(b)
	}
	return all.String()
}

// A get whose URL carries a token, answered 404 with a reason phrase that
// echoes the query, or refused: the token is in no message and no --json
// event, in any encoding.
func TestGetNeverShowsURLSecrets(t *testing.T) {
	srv := rawStatusServer(t, func(r *http.Request) string { return "404 Not Found: " + r.URL.RawQuery },
		func(r *http.Request) string { return "no such file " + r.URL.RawQuery })
	tokenURL := "/file.bin?token=" + url.QueryEscape(querySecret)
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close() // nothing listens there now: connection refused
	for _, u := range []string{srv.URL + tokenURL, closedURL + tokenURL,
		strings.Replace(srv.URL, "http://", "http://user:"+url.QueryEscape(querySecret)+"@", 1) + "/file.bin"} {
		for _, jsonOut := range []bool{false, true} {
			dir := t.TempDir()
			args := []string{"get", u, "--state-dir", filepath.Join(dir, "st"), "--attempts", "1", "-H", "X-Api-Key: " + headerSecret}
			if jsonOut {
				args = append(args, "--json")
			}
			res := runCLI(t, dir, args...)
			if res.code != 1 {
				t.Fatalf("get %v: exit %d, want 1: %s", args, res.code, res.stderr)
			}
			noSecrets(t, fmt.Sprintf("get %v stderr", args), res.stderr)
			noSecrets(t, fmt.Sprintf("get %v stdout", args), res.stdout)
			if !strings.Contains(res.stderr+res.stdout, "127.0.0.1") && !strings.Contains(res.stderr+res.stdout, "404") {
				t.Errorf("the message no longer says what failed: %s%s", res.stdout, res.stderr)
			}
		}
	}
}

// A dead item whose server echoed the manifest's query secret and API key
// in its error body, in the encodings servers use (the URL's own percent-
// encoding, lower-case hex, decoded, JSON-escaped): the secrets are in
// neither 'rebound status' (text and --json), the run's --json events nor
// the bytes of the state file. (The state keeps the manifest line, which
// holds the secrets as the manifest wrote them, to send it; the file is
// checked for the forms the manifest line does not hold.)
func TestRunEchoedSecretsNotStored(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok := r.URL.Query().Get("token")
		http.Error(w, "invalid request "+r.URL.RawQuery+" lower "+lowerHex(r.URL.RawQuery)+" decoded "+tok+
			" json "+jsonUnicode(tok)+" key "+allPercent(r.Header.Get("X-Api-Key")), http.StatusBadRequest)
	}))
	defer srv.Close()
	dir := t.TempDir()
	line, _ := json.Marshal(map[string]any{"id": "a", "url": srv.URL + "/x?token=" + url.QueryEscape(querySecret),
		"headers": map[string]string{"X-Api-Key": headerSecret}})
	if err := os.WriteFile(filepath.Join(dir, "m.jsonl"), append(line, '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	res := runCLI(t, dir, "run", "m.jsonl", "--json", "--attempts", "1")
	if res.code != 1 {
		t.Fatalf("run: exit %d, want 1 (the item dead): %s", res.code, res.stderr)
	}
	noSecrets(t, "run --json", res.stdout+res.stderr)
	st := runCLI(t, dir, "status", "m.jsonl")
	noSecrets(t, "status", st.stdout+st.stderr)
	for _, w := range []string{"invalid request", " lower ", " decoded ", " json ", " key "} {
		if !strings.Contains(st.stdout, w) {
			t.Errorf("status lost %q of the server's message: %s", w, st.stdout)
		}
	}
	stj := runCLI(t, dir, "status", "m.jsonl", "--json")
	noSecrets(t, "status --json", stj.stdout+stj.stderr)
	file := stateBytes(t, filepath.Join(dir, ".rebound"))
	for _, f := range []string{querySecret, lowerHex(url.QueryEscape(querySecret)), jsonUnicode(querySecret),
		allPercent(headerSecret)} {
		if strings.Contains(file, f) {
			t.Errorf("the state file holds %q", f)
		}
	}
}

// jsonUnicode writes s as a JSON encoder that escapes every character would.
func jsonUnicode(s string) string {
	var b strings.Builder
	for _, r := range s {
		fmt.Fprintf(&b, `\u%04x`, r)
	}
	return b.String()
}

// lowerHex writes the hex digits of s's percent escapes in lower case.
func lowerHex(s string) string {
	b := []byte(s)
	for i := 0; i+2 < len(b); i++ {
		if b[i] == '%' {
			copy(b[i+1:i+3], strings.ToLower(string(b[i+1:i+3])))
		}
	}
	return string(b)
}

// allPercent percent-encodes every byte of s.
func allPercent(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		fmt.Fprintf(&b, "%%%02X", s[i])
	}
	return b.String()
}

// A reason phrase that clears the screen and retitles the terminal reaches
// neither the terminal (get, upload, run, status) nor the state file as it is.
func TestServerEscapesNeverReachTerminal(t *testing.T) {
	const evil = "\x1b[2J\x1b]0;pwned\x07\u202e\u009b\xff"
	srv := rawStatusServer(t, func(*http.Request) string { return "400 Bad" + evil },
		func(*http.Request) string { return "body" + evil })
	dir := t.TempDir()
	bad := func(what, out string) {
		t.Helper()
		if what != "the state file" && !utf8.ValidString(out) {
			t.Errorf("%s is not valid UTF-8: %q", what, out)
		}
		// --json output is checked as a script reads it too: decoded (JSON
		// writes ESC as \u001b, which jq -r turns back into ESC).
		texts := append([]string{out}, jsonStrings(out)...)
		for _, text := range texts {
			for _, c := range []string{"\x1b[2J", "\x1b]0;pwned\x07", "\u202e", "\u009b"} {
				if strings.Contains(text, c) {
					t.Errorf("%s passes %q on: %q", what, c, text)
				}
			}
		}
	}
	for _, args := range [][]string{
		{"get", srv.URL + "/f", "--attempts", "1"},
		{"get", srv.URL + "/f", "--attempts", "1", "--json"},
		{"upload", "m.jsonl", srv.URL + "/files/", "--attempts", "1"},
		{"upload", "m.jsonl", srv.URL + "/files/", "--attempts", "1", "--json"},
	} {
		if err := os.WriteFile(filepath.Join(dir, "m.jsonl"), []byte(`{"id":"a","url":"`+srv.URL+`/x"}`+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		res := runCLI(t, dir, append(args, "--state-dir", filepath.Join(dir, "st"))...)
		if res.code != 1 {
			t.Errorf("%v: exit %d, want 1: %s", args, res.code, res.stderr)
		}
		bad(fmt.Sprint(args), res.stdout+res.stderr)
		if !strings.Contains(res.stdout+res.stderr, `400 Bad\x1b[2J`) {
			t.Errorf("%v: the reason phrase is not shown escaped: %s%s", args, res.stdout, res.stderr)
		}
	}
	res := runCLI(t, dir, "run", "m.jsonl", "--json", "--attempts", "1")
	if res.code != 1 {
		t.Fatalf("run: exit %d, want 1: %s", res.code, res.stderr)
	}
	bad("run --json", res.stdout+res.stderr)
	for _, args := range [][]string{{"status", "m.jsonl"}, {"status", "m.jsonl", "--json"}} {
		st := runCLI(t, dir, args...)
		bad(fmt.Sprint(args), st.stdout+st.stderr)
	}
	bad("the state file", stateBytes(t, filepath.Join(dir, ".rebound")))
}

// Every --json event that reports a wait (the retry events of run, get
// and upload) gives it as wait_ms, a number of milliseconds; none uses
// another unit or name.
func TestJSONEventsWaitInMilliseconds(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "busy", http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "m.jsonl"), []byte(`{"id":"a","url":"`+srv.URL+`/x"}`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	st := filepath.Join(dir, "st")
	// The first wait is the backoff's first step with its jitter ×[0.8, 1.2]:
	// 50 ms for run (--backoff), the default 1 s for get and upload.
	for _, tc := range []struct {
		args     []string
		min, max float64
	}{
		{[]string{"run", "m.jsonl", "--json", "--attempts", "2", "--backoff", "50ms"}, 40, 60},
		{[]string{"get", srv.URL + "/f", "--json", "--attempts", "2", "--state-dir", st}, 800, 1200},
		{[]string{"upload", "m.jsonl", srv.URL + "/files/", "--json", "--attempts", "2", "--state-dir", st}, 800, 1200},
	} {
		args := tc.args
		res := runCLI(t, dir, args...)
		retries := 0
		sc := bufio.NewScanner(strings.NewReader(res.stdout))
		for sc.Scan() {
			var ev map[string]any
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
				t.Fatalf("%v: line %q: %v", args, sc.Text(), err)
			}
			for k := range ev {
				if strings.HasPrefix(k, "wait") && k != "wait_ms" {
					t.Errorf("%v: event %v has %s", args, ev, k)
				}
			}
			if ev["event"] != "retry" {
				continue
			}
			retries++
			if w, ok := ev["wait_ms"].(float64); !ok || w < tc.min || w > tc.max {
				t.Errorf("%v: retry event %v: want wait_ms in [%v, %v]", args, ev, tc.min, tc.max)
			}
		}
		if retries != 1 {
			t.Errorf("%v: %d retry events, want 1: %s %s", args, retries, res.stdout, res.stderr)
		}
	}
}
