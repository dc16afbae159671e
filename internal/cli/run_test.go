package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// cliRun runs the CLI in-process and returns its exit code and output.
func cliRun(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := Main(args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

func countingServer(t *testing.T) (*httptest.Server, *atomic.Int64) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		if strings.HasPrefix(r.URL.Path, "/missing") {
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func TestRunAndStatus(t *testing.T) {
	srv, hits := countingServer(t)
	dir := t.TempDir()
	m := filepath.Join(dir, "jobs.jsonl")
	var lines []string
	for i := range 20 {
		lines = append(lines, fmt.Sprintf(`{"id":"%d","url":"%s/ok/%d"}`, i, srv.URL, i))
	}
	lines = append(lines, fmt.Sprintf(`{"id":"lost","url":"%s/missing"}`, srv.URL))
	if err := os.WriteFile(m, []byte(strings.Join(lines, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := cliRun("run", m, "--json")
	if code != ExitFailed {
		t.Fatalf("exit %d, want 1 (one dead item): %s", code, errOut)
	}
	var last map[string]any
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if err := json.Unmarshal([]byte(l), &last); err != nil {
			t.Fatalf("--json line %q: %v", l, err)
		}
	}
	if last["event"] != "summary" || last["done"] != float64(20) || last["dead"] != float64(1) {
		t.Fatalf("summary event %v", last)
	}
	fi, err := os.Stat(filepath.Join(dir, ".rebound", "jobs.db"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("state file: %v %v", fi, err)
	}

	code, out, _ = cliRun("status", m)
	if code != 0 || !strings.Contains(out, "dead items") || !strings.Contains(out, "404 Not Found") {
		t.Fatalf("status: %d %s", code, out)
	}
	// status --json keys every list the same way, in snake case.
	code, out, _ = cliRun("status", m, "--json")
	var st struct {
		TopErrors []map[string]any `json:"top_errors"`
		DeadItems []map[string]any `json:"dead_items"`
	}
	if err := json.Unmarshal([]byte(out), &st); code != 0 || err != nil || len(st.TopErrors) != 1 || len(st.DeadItems) != 1 {
		t.Fatalf("status --json: %d %v %s", code, err, out)
	}
	if e := st.TopErrors[0]; e["kind"] != "permanent" || e["count"] != float64(1) || !strings.Contains(fmt.Sprint(e["error"]), "404") {
		t.Fatalf("status --json top_errors[0] = %v, want kind, error and count keys", e)
	}
	// --dead 0 shows the counts without listing dead items.
	code, out, errOut = cliRun("status", m, "--dead", "0")
	if code != 0 || !strings.Contains(out, "dead") || strings.Contains(out, "dead items") {
		t.Fatalf("status --dead 0: exit %d: %s %s", code, out, errOut)
	}
	// Re-running sends nothing new except nothing at all: done items are skipped,
	// dead ones stay dead until --retry-dead.
	before := hits.Load()
	if code, _, _ = cliRun("run", m, "--quiet"); code != ExitFailed || hits.Load() != before {
		t.Fatalf("re-run: exit %d, %d new requests", code, hits.Load()-before)
	}
	if code, _, _ = cliRun("run", m, "--quiet", "--retry-dead"); code != ExitFailed || hits.Load() != before+1 {
		t.Fatalf("--retry-dead: exit %d, %d new requests", code, hits.Load()-before)
	}
}

// An item's error says what failed, not the client's "gave up after 1
// attempt (attempts exhausted)", which read as final at attempt 1 of 5.
func TestRunErrorIsTheCause(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens there now: connection refused
	dir := t.TempDir()
	m := filepath.Join(dir, "refused.jsonl")
	if err := os.WriteFile(m, []byte(`{"id":"x","url":"`+url+`/x"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := cliRun("run", m, "--json", "--attempts", "2", "--backoff", "1ms")
	if code != ExitFailed {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var retry, dead map[string]any
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var ev map[string]any
		if err := json.Unmarshal([]byte(l), &ev); err != nil {
			t.Fatalf("--json line %q: %v", l, err)
		}
		switch ev["event"] {
		case "retry":
			retry = ev
		case "dead":
			dead = ev
		}
	}
	for _, ev := range []map[string]any{retry, dead} {
		msg := fmt.Sprint(ev["error"])
		if ev == nil || ev["kind"] != "transient" || !strings.Contains(msg, "connection refused") || strings.Contains(msg, "gave up") {
			t.Fatalf("event %v: want a transient connection refused without the client's give-up", ev)
		}
	}
}

// What run --help says about 501 is what happens: one request, then dead.
func TestRun501IsDeadAtOnce(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		http.Error(w, "no", http.StatusNotImplemented)
	}))
	defer srv.Close()
	m := filepath.Join(t.TempDir(), "n.jsonl")
	if err := os.WriteFile(m, []byte(`{"id":"x","url":"`+srv.URL+`"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := cliRun("run", m, "--quiet", "--backoff", "1ms"); code != ExitFailed || hits.Load() != 1 {
		t.Fatalf("exit %d after %d requests, want 1 after 1: %s", code, hits.Load(), errOut)
	}
	_, help, _ := cliRun("run", "--help")
	if !strings.Contains(strings.Join(strings.Fields(help), " "), "501 and other 4xx make the item dead at once") {
		t.Fatalf("run --help does not say a 501 is not retried:\n%s", help)
	}
}

func TestRunRefusesBadInput(t *testing.T) {
	srv, hits := countingServer(t)
	cases := []struct {
		name, manifest, want string
	}{
		{"bad json", `{"id":"a","url":"` + srv.URL + `/"}` + "\n{oops\n", "line 2"},
		{"not http", `{"id":"a","url":"file:///etc/passwd"}`, "scheme must be http or https"},
		{"missing body_file", `{"id":"a","method":"PUT","url":"` + srv.URL + `/","body_file":"nope.bin"}`, "body_file"},
		{"duplicate id", `{"id":"a","url":"` + srv.URL + `/"}` + "\n" + `{"id":"a","url":"` + srv.URL + `/"}`, "duplicate id"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := filepath.Join(t.TempDir(), "m.jsonl")
			if err := os.WriteFile(m, []byte(c.manifest), 0o600); err != nil {
				t.Fatal(err)
			}
			code, _, errOut := cliRun("run", m, "--quiet")
			if code != ExitUsage || !strings.Contains(errOut, c.want) {
				t.Fatalf("exit %d, stderr %q; want 2 and %q", code, errOut, c.want)
			}
			// A first run that refuses its manifest leaves no state behind.
			if entries, _ := os.ReadDir(filepath.Dir(m)); len(entries) != 1 {
				t.Errorf("files left beside the manifest: %v", entries)
			}
		})
	}
	if hits.Load() != 0 {
		t.Fatalf("%d requests sent for refused manifests", hits.Load())
	}

	// A refused manifest never touches a state that was there before (and a
	// job of one item shows no throughput: one completion is not a rate).
	dir := t.TempDir()
	m := filepath.Join(dir, "m.jsonl")
	os.WriteFile(m, []byte(`{"id":"a","url":"`+srv.URL+`/"}`+"\n"), 0o600)
	if code, _, errOut := cliRun("run", m, "--quiet"); code != ExitOK {
		t.Fatalf("first run: exit %d: %s", code, errOut)
	}
	os.WriteFile(m, []byte("{oops\n"), 0o600)
	if code, _, _ := cliRun("run", m, "--quiet"); code != ExitUsage {
		t.Fatalf("bad manifest on resume: exit %d, want 2", code)
	}
	if _, err := os.Stat(filepath.Join(dir, ".rebound", "m.db")); err != nil {
		t.Errorf("the existing state is gone: %v", err)
	}
	os.WriteFile(m, []byte(`{"id":"a","url":"`+srv.URL+`/"}`+"\n"), 0o600)
	if code, out, _ := cliRun("status", m); code != ExitOK || strings.Contains(out, "throughput") || !strings.Contains(out, "done") {
		t.Errorf("status of a one-item job: exit %d, %q; want counts and no throughput", code, out)
	}
}

// Duration flags mean what they say: 0 or negative is refused before
// anything is sent (the library would read 0 as its default and a negative
// value as "none"), except --backoff 0, which retries without waiting.
func TestRunDurationFlags(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		http.Error(w, "busy", http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	m := filepath.Join(t.TempDir(), "d.jsonl")
	if err := os.WriteFile(m, []byte(`{"id":"x","url":"`+srv.URL+`"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"--grace", "-1s"}, {"--grace", "0"}, {"--read-timeout", "0"}, {"--connect-timeout", "-5s"},
		{"--max-backoff", "0"}, {"--breaker-open", "0"}, {"--backoff", "-1s"},
	} {
		code, _, errOut := cliRun(append([]string{"run", m, "--quiet"}, args...)...)
		if code != ExitUsage || !strings.Contains(errOut, args[0]) {
			t.Errorf("%v: exit %d, stderr %q; want 2 naming the flag", args, code, errOut)
		}
	}
	if hits.Load() != 0 {
		t.Fatalf("%d requests sent with refused flags", hits.Load())
	}
	code, out, errOut := cliRun("run", m, "--json", "--attempts", "3", "--backoff", "0")
	if code != ExitFailed || hits.Load() != 3 {
		t.Fatalf("--backoff 0: exit %d after %d requests, want 1 after 3: %s", code, hits.Load(), errOut)
	}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var ev struct {
			Event string `json:"event"`
			Wait  *int64 `json:"wait_ms"`
		}
		if err := json.Unmarshal([]byte(l), &ev); err != nil {
			t.Fatalf("--json line %q: %v", l, err)
		}
		if ev.Event == "retry" && (ev.Wait == nil || *ev.Wait != 0) {
			t.Fatalf("--backoff 0: retry event %s, want wait_ms 0", l)
		}
	}
}

func TestRunRefusesDamagedState(t *testing.T) {
	srv, hits := countingServer(t)
	dir := t.TempDir()
	m := filepath.Join(dir, "m.jsonl")
	if err := os.WriteFile(m, []byte(`{"id":"a","url":"`+srv.URL+`/"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := cliRun("run", m, "--quiet"); code != 0 {
		t.Fatalf("first run: %d %s", code, errOut)
	}
	state := filepath.Join(dir, ".rebound", "m.db")
	good, err := os.ReadFile(state)
	if err != nil {
		t.Fatal(err)
	}
	damaged := map[string][]byte{
		"garbage":   bytes.Repeat([]byte("not a database "), 500),
		"truncated": good[:len(good)/3],
	}
	for name, data := range damaged {
		t.Run(name, func(t *testing.T) {
			if err := os.WriteFile(state, data, 0o600); err != nil {
				t.Fatal(err)
			}
			code, _, errOut := cliRun("run", m, "--quiet")
			if code != ExitUsage || !strings.Contains(errOut, state) {
				t.Fatalf("exit %d, stderr %q: want 2 and the file's name", code, errOut)
			}
			after, _ := os.ReadFile(state)
			if !bytes.Equal(after, data) {
				t.Fatal("the damaged state file was changed")
			}
		})
	}
	if hits.Load() != 1 {
		t.Fatalf("%d requests, want only the first run's 1", hits.Load())
	}
}

func TestHelpAndUsageErrors(t *testing.T) {
	code, out, _ := cliRun("--help")
	if code != 0 || !strings.Contains(out, "Exit codes") {
		t.Fatalf("--help: %d %s", code, out)
	}
	if code, _, _ := cliRun("run"); code != ExitUsage {
		t.Fatalf("run without a manifest: exit %d", code)
	}
	if code, _, _ := cliRun("no-such-command"); code != ExitUsage {
		t.Fatalf("unknown command: exit %d", code)
	}
	if code, _, errOut := cliRun("status", "--state", filepath.Join(t.TempDir(), "none.db")); code != ExitUsage || !strings.Contains(errOut, "none.db") {
		t.Fatalf("status of a missing file: %d %s", code, errOut)
	}
}

// An edited manifest is refused with advice that cannot do an item twice:
// put the new lines in a new manifest. --restart and another --job name
// are named only as what not to do, since they send finished items again
// under new keys.
func TestRunManifestChangedAdvice(t *testing.T) {
	srv, hits := countingServer(t)
	dir := t.TempDir()
	m := filepath.Join(dir, "m.jsonl")
	line := func(id string) string { return `{"id":"` + id + `","url":"` + srv.URL + `/` + id + `"}` + "\n" }
	if err := os.WriteFile(m, []byte(line("a")+line("b")), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := cliRun("run", m, "--quiet"); code != 0 {
		t.Fatalf("first run: %d %s", code, errOut)
	}
	if err := os.WriteFile(m, []byte(line("a")+line("b")+line("c")), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := cliRun("run", m, "--quiet")
	if code != ExitUsage || hits.Load() != 2 {
		t.Fatalf("edited manifest: exit %d, %d requests; want 2 and only the first run's 2", code, hits.Load())
	}
	for _, want := range []string{"new manifest", "new idempotency keys", "2 item(s) it already did would be sent again", "Do not use --restart"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr %q lacks %q", errOut, want)
		}
	}
	if strings.Contains(errOut, "use another job name") {
		t.Errorf("stderr %q still advises another job name", errOut)
	}
}
