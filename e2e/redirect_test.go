package e2e

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// A manifest POST that the server answers 302 (an http:// URL behind an
// https redirect is enough) is not done: the real CLI does not turn it into
// a GET, the item is dead with the redacted Location in its reason, and the
// redirect target never hears of it.
func TestRunPostRedirectIsNotDone(t *testing.T) {
	var targetHits, originHits atomic.Int64
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		targetHits.Add(1)
		io.WriteString(w, "welcome")
	}))
	t.Cleanup(target.Close)
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		originHits.Add(1)
		http.Redirect(w, r, target.URL+"/orders?token=LOCSECRET", http.StatusFound)
	}))
	t.Cleanup(origin.Close)

	dir := t.TempDir()
	manifest := filepath.Join(dir, "orders.jsonl")
	line := `{"id":"o1","method":"POST","url":"` + origin.URL + `/orders","body":{"item":1}}` + "\n"
	if err := os.WriteFile(manifest, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	res := runCLI(t, dir, "run", manifest, "--json", "--backoff", "1ms", "--max-backoff", "5ms")
	if res.code != 1 {
		t.Fatalf("rebound run exited %d, want 1 (an item failed for good)\nstdout: %s\nstderr: %s", res.code, res.stdout, res.stderr)
	}
	if targetHits.Load() != 0 || originHits.Load() != 1 {
		t.Fatalf("origin got %d requests, the redirect target %d; want 1 and 0", originHits.Load(), targetHits.Load())
	}
	st := runCLI(t, dir, "status", manifest, "--json")
	for name, out := range map[string]string{"run": res.stdout + res.stderr, "status": st.stdout} {
		if !strings.Contains(out, target.URL+"/orders") || strings.Contains(out, "LOCSECRET") {
			t.Errorf("%s does not name the redacted Location:\n%s", name, out)
		}
	}
}

// A redirect to another origin (another port of 127.0.0.1) carries none of
// the manifest's or -H's headers there, and no Referer with the first URL's
// token, for 'run' and 'get' alike.
func TestCrossOriginRedirectDropsHeaders(t *testing.T) {
	var mu sync.Mutex
	var got []http.Header
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.Header.Clone())
		mu.Unlock()
		io.WriteString(w, "data")
	}))
	t.Cleanup(other.Close)
	origin := httptest.NewServer(http.RedirectHandler(other.URL+"/data", http.StatusFound))
	t.Cleanup(origin.Close)

	dir := t.TempDir()
	manifest := filepath.Join(dir, "fetch.jsonl")
	line := `{"id":"f1","url":"` + origin.URL + `/x?token=QSECRET","headers":{"X-Api-Key":"KSECRET","Authorization":"Bearer ASECRET"}}` + "\n"
	if err := os.WriteFile(manifest, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	if res := runCLI(t, dir, "run", manifest, "--quiet"); res.code != 0 {
		t.Fatalf("rebound run exited %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	if res := runCLI(t, dir, "get", origin.URL+"/file?token=QSECRET", "-o", filepath.Join(dir, "out.bin"),
		"--state-dir", filepath.Join(dir, "transfers"), "-H", "X-Api-Key: KSECRET", "-H", "Authorization: Bearer ASECRET"); res.code != 0 {
		t.Fatalf("rebound get exited %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) < 2 {
		t.Fatalf("the other origin got %d requests, want run's and get's", len(got))
	}
	for i, h := range got {
		for _, k := range []string{"X-Api-Key", "Authorization", "Referer"} {
			if v, ok := h[k]; ok {
				t.Errorf("request %d: %s %q reached the other origin", i, k, v)
			}
		}
	}
}

// A manifest header value with CR LF is a bad line: exit 2 naming its line,
// nothing sent.
func TestRunRefusesHeaderWithControlCharacters(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	manifest := filepath.Join(dir, "bad.jsonl")
	lines := `{"id":"a","url":"` + srv.URL + `/a"}` + "\n" +
		`{"id":"b","url":"` + srv.URL + `/b","headers":{"X-Trace":"v\r\nX-Injected: 1"}}` + "\n"
	if err := os.WriteFile(manifest, []byte(lines), 0o600); err != nil {
		t.Fatal(err)
	}
	res := runCLI(t, dir, "run", manifest)
	if res.code != 2 || !strings.Contains(res.stderr, "line 2") || !strings.Contains(res.stderr, "control character") || hits.Load() != 0 {
		t.Fatalf("exit %d, %d requests sent; stderr:\n%s", res.code, hits.Load(), res.stderr)
	}
	// The same for get's -H: the caller's input, refused before sending.
	res = runCLI(t, dir, "get", srv.URL+"/f", "-o", filepath.Join(dir, "f"), "--state-dir", filepath.Join(dir, "transfers"),
		"-H", "X-Trace: v\r\nX-Injected: 1")
	if res.code != 2 || hits.Load() != 0 {
		t.Fatalf("get: exit %d, %d requests sent; stderr:\n%s", res.code, hits.Load(), res.stderr)
	}
}
