package idempotency_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/rebound-go/rebound/idempotency"
)

// postAs sends one keyed POST over real HTTP with the given headers.
func postAs(t *testing.T, srv *httptest.Server, key string, headers map[string]string) (status int, replayed bool, body string) {
	t.Helper()
	req, err := http.NewRequest("POST", srv.URL+"/orders", strings.NewReader(`{"item":"book"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set(idempotency.HeaderKey, quoted(key))
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header.Get(idempotency.HeaderReplayed) == "true", string(b)
}

// Finding 19 of issue 11: with the zero Config, two clients with different
// credentials that pick the same key and send the same request each get
// their own response; the handler runs for each. Before the fix every
// client shared one scope and bob received alice's stored order.
func TestDefaultScopeSeparatesCredentials(t *testing.T) {
	forEachStore(t, func(t *testing.T, store idempotency.Store) {
		var runs atomic.Int64
		srv := httptest.NewServer(newMiddleware(t, store, idempotency.Config{}).Handler(counting(&runs)))
		defer srv.Close()
		defer srv.Client().CloseIdleConnections()

		alice := map[string]string{"Authorization": "Bearer alice-token"}
		bob := map[string]string{"Authorization": "Bearer bob-token"}
		_, _, aBody := postAs(t, srv, "same-key", alice)
		status, replayed, bBody := postAs(t, srv, "same-key", bob)
		if status != http.StatusCreated || replayed || bBody == aBody || runs.Load() != 2 {
			t.Fatalf("bob: %d replayed=%v body %s (alice's %s), handler ran %d times; want bob's own response", status, replayed, bBody, aBody, runs.Load())
		}
		// Each client's retry is still answered from the store.
		for _, c := range []struct {
			who  map[string]string
			body string
		}{{alice, aBody}, {bob, bBody}} {
			if status, replayed, body := postAs(t, srv, "same-key", c.who); !replayed || body != c.body || status != http.StatusCreated {
				t.Fatalf("retry: %d replayed=%v %s, want the replay of %s", status, replayed, body, c.body)
			}
		}
		// A cookie is a credential too; so is an API key header.
		if _, replayed, _ := postAs(t, srv, "same-key", map[string]string{"Cookie": "session=alice"}); replayed {
			t.Fatal("a request with a session cookie got a response stored for a bearer token")
		}
		if _, replayed, _ := postAs(t, srv, "same-key", map[string]string{"X-Api-Key": "k1"}); replayed {
			t.Fatal("a request with an API key got another client's response")
		}
		if runs.Load() != 4 {
			t.Fatalf("handler ran %d times, want 4", runs.Load())
		}
	})
}

// Requests without credentials share the anonymous scope: a client that
// sends no Authorization (as rebound run does against the e2e servers)
// still has its retries deduplicated.
func TestDefaultScopeAnonymousStillDeduplicates(t *testing.T) {
	var runs atomic.Int64
	srv := httptest.NewServer(newMiddleware(t, idempotency.NewMemoryStore(), idempotency.Config{}).Handler(counting(&runs)))
	defer srv.Close()
	defer srv.Client().CloseIdleConnections()
	_, _, first := postAs(t, srv, "anon", nil)
	if _, replayed, again := postAs(t, srv, "anon", nil); !replayed || again != first || runs.Load() != 1 {
		t.Fatalf("anonymous retry: replayed=%v %s, handler ran %d times; want the replay", replayed, again, runs.Load())
	}
}

// One scope for everyone is an explicit choice, SharedScope.
func TestSharedScopeOptIn(t *testing.T) {
	var runs atomic.Int64
	srv := httptest.NewServer(newMiddleware(t, idempotency.NewMemoryStore(), idempotency.Config{Principal: idempotency.SharedScope}).Handler(counting(&runs)))
	defer srv.Close()
	defer srv.Client().CloseIdleConnections()
	postAs(t, srv, "k", map[string]string{"Authorization": "Bearer a"})
	if _, replayed, _ := postAs(t, srv, "k", map[string]string{"Authorization": "Bearer b"}); !replayed || runs.Load() != 1 {
		t.Fatalf("SharedScope: replayed=%v, runs %d; want one scope for all", replayed, runs.Load())
	}
}

// The store keeps a hash of the credentials, never the credentials.
func TestDefaultScopeStoresNoCredential(t *testing.T) {
	db := openSQLite(t, filepath.Join(t.TempDir(), "idem.db"))
	var runs atomic.Int64
	srv := httptest.NewServer(newMiddleware(t, newSQLStore(t, db, idempotency.SQLite, ""), idempotency.Config{}).Handler(counting(&runs)))
	defer srv.Close()
	defer srv.Client().CloseIdleConnections()
	const secret = "s3cr3t-token-value"
	postAs(t, srv, "k", map[string]string{"Authorization": "Bearer " + secret, "Cookie": "sid=" + secret})
	var scope string
	if err := db.QueryRowContext(context.Background(), `SELECT scope FROM `+idempotency.DefaultTable).Scan(&scope); err != nil {
		t.Fatal(err)
	}
	if scope == "" || strings.Contains(scope, secret) || strings.Contains(scope, "Bearer") {
		t.Fatalf("stored scope %q: want a non-empty hash without the credential", scope)
	}
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM `+idempotency.DefaultTable+` WHERE instr(CAST(body AS TEXT), ?) > 0 OR instr(header, ?) > 0`, secret, secret).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d rows hold the credential (%v)", n, err)
	}
}

// FuzzCredentialScope states the scope's property: two requests get the
// same scope exactly when they carry the same values in every credential
// header; a request with none gets the anonymous (empty) scope; any other
// scope is a fixed-size hash, so no credential is ever stored as such.
func FuzzCredentialScope(f *testing.F) {
	f.Add("Bearer a", "", "Bearer a", "", uint8(0b0101))
	f.Add("a", "b", "ab", "", uint8(0b0111))
	f.Add("", "x", "x", "", uint8(0b0110))
	f.Add("Basic Zm9vOmJhcg==", "sid=1", "Basic Zm9vOmJhcg==", "sid=2", uint8(0b1111))
	scope := idempotency.CredentialScope("authorization", "Cookie")
	f.Fuzz(func(t *testing.T, auth1, cookie1, auth2, cookie2 string, present uint8) {
		// present's bits say which of the four values the requests carry;
		// bit 4 gives the second request a second Authorization value.
		mk := func(auth, cookie string, hasAuth, hasCookie, twice bool) *http.Request {
			r := &http.Request{Header: http.Header{}}
			if hasAuth {
				r.Header["Authorization"] = []string{auth}
				if twice {
					r.Header["Authorization"] = append(r.Header["Authorization"], cookie)
				}
			}
			if hasCookie {
				r.Header["Cookie"] = []string{cookie}
			}
			return r
		}
		r1 := mk(auth1, cookie1, present&1 != 0, present&2 != 0, false)
		r2 := mk(auth2, cookie2, present&4 != 0, present&8 != 0, present&16 != 0)
		s1, s2 := scope(r1), scope(r2)
		same := equalValues(r1.Header["Authorization"], r2.Header["Authorization"]) &&
			equalValues(r1.Header["Cookie"], r2.Header["Cookie"])
		if (s1 == s2) != same {
			t.Fatalf("scopes %q and %q for headers %q and %q: equal scopes must mean equal credentials", s1, s2, r1.Header, r2.Header)
		}
		for _, c := range []struct {
			r *http.Request
			s string
		}{{r1, s1}, {r2, s2}} {
			anonymous := len(c.r.Header) == 0
			if anonymous != (c.s == "") {
				t.Fatalf("headers %q: scope %q; want empty exactly for a request without credentials", c.r.Header, c.s)
			}
			if !anonymous && (len(c.s) != len("cred1:")+64 || !strings.HasPrefix(c.s, "cred1:")) {
				t.Fatalf("scope %q is not a prefixed SHA-256", c.s)
			}
		}
	})
}

func equalValues(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
