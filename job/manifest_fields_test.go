package job

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// What net/http would refuse to send, and fields that encoding/json would
// match without regard to case, are bad lines, refused with their number
// before anything is sent.
func TestScanManifestRefusesUnsendableHeadersAndMiscasedFields(t *testing.T) {
	lines := []struct{ line, want string }{
		{`{"id":"x","url":"http://h/","headers":{"X-A":"v\r\nX-Injected: 1"}}`, `header "X-A": its value holds a control character`},
		{`{"id":"x","url":"http://h/","headers":{"X-A":"v\nw"}}`, "control character"},
		{`{"id":"x","url":"http://h/","headers":{"X-A":"v\u0000"}}`, "control character"},
		{`{"id":"x","url":"http://h/","headers":{"X-A":"v\u007f"}}`, "control character"},
		{`{"id":"x","url":"http://h/","headers":{"X-A":"1","x-a":"2"}}`, "given twice"},
		{`{"id":"x","url":"http://h/","heAders":{"A":"b"}}`, `unknown field "heAders"`},
		{`{"ID":"x","url":"http://h/"}`, `unknown field "ID"`},
		{`{"id":"x","URL":"http://h/"}`, `unknown field "URL"`},
		{`{"id":"x","url":"http://h/","id":"y"}`, `field "id" given twice`},
		{`{"id":"x","url":"http://h:0/"}`, "port"},
		{`{"id":"x","url":"http://h:99999/"}`, "port"},
		{`{"id":"x","url":"https://h/","headers":{"Upgrade":"websocket"}}`, "connection"},
		{`{"id":"x","url":"https://h/","headers":{"Connection":"Upgrade"}}`, "connection"},
		{`{"id":"x","url":"https://h/","headers":{"Transfer-Encoding":"gzip"}}`, "connection"},
		{`{"id":"x","url":"http://:"}`, "has no host"},                // found by FuzzManifestLineSendable
		{`{"id":"x","url":"http://h/"}}`, "more than one JSON value"}, // found by FuzzManifestLineSendable
		{`{"id":"x","url":"http://h/p?a b"}`, "query holds a space"},  // found by FuzzManifestLineSendable
	}
	var in []string
	for _, l := range lines {
		in = append(in, l.line)
	}
	in = append(in, `{"id":"ok","url":"http://h:8080/","headers":{"X-Tab":"a\tb","X-Utf8":"é"}}`)
	var ok []string
	err := ScanManifest(strings.NewReader(strings.Join(in, "\n")), "m.jsonl", "", func(_ int, r Request, _ []byte) error {
		ok = append(ok, r.ID)
		return nil
	})
	var merr *ManifestError
	if !errors.As(err, &merr) || len(merr.Lines) != len(lines) {
		t.Fatalf("got %v", err)
	}
	for i, l := range lines {
		if le := merr.Lines[i]; le.Line != i+1 || !strings.Contains(le.Err.Error(), l.want) {
			t.Errorf("line %d: got %v, want %q", i+1, le, l.want)
		}
	}
	if strings.Contains(err.Error(), "Injected") {
		t.Errorf("the header's value is shown: %v", err)
	}
	if len(ok) != 1 || ok[0] != "ok" {
		t.Fatalf("valid lines: %v", ok)
	}
}

// FuzzManifestLineSendable states what validation promises: a line it
// accepts is sent by HTTPHandler through net/http's own client without an
// error raised before sending (its method, URL and headers are all ones
// net/http writes, over HTTP/1.1 and, for https, HTTP/2, which refuses more
// connection headers), and its field names are exactly the documented ones.
// The peers are net/http servers on 127.0.0.1 that answer 204 to anything,
// whatever host the line names; they must understand what was sent.
func FuzzManifestLineSendable(f *testing.F) {
	f.Add(`{"id":"a","url":"http://h/"}`)
	f.Add(`{"id":"a","method":"POST","url":"https://u:p@h:8443/p?q=1","headers":{"X-A":"b\tc","Idempotency-Key":"k"},"body":{"x":[1,2]}}`)
	f.Add(`{"id":"a","url":"http://h/","headers":{"X":"\r\n"}}`)
	f.Add(`{"id":"a","url":"http://h/","heAders":{"X":"y"}}`)
	f.Add(`{"id":"a","url":"http://h:65536/"}`)
	f.Add(`{"id":"a","method":"PUT","url":"http://[::1]:1/","body":"text"}`)
	f.Add(`{"id":"a","url":"https://h/","headers":{"Upgrade":"websocket","Connection":"Upgrade"}}`)
	answer := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	h1 := httptest.NewServer(answer)
	defer h1.Close()
	h2 := httptest.NewUnstartedServer(answer)
	h2.EnableHTTP2 = true
	h2.StartTLS()
	defer h2.Close()
	var d net.Dialer
	dialH1 := func(ctx context.Context, _, _ string) (net.Conn, error) {
		return d.DialContext(ctx, "tcp", h1.Listener.Addr().String())
	}
	tlsConf := h2.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	tlsConf.ServerName, tlsConf.NextProtos = "example.com", []string{"h2"} // a name the test certificate holds
	dialH2 := func(ctx context.Context, _, _ string) (net.Conn, error) {
		c, err := d.DialContext(ctx, "tcp", h2.Listener.Addr().String())
		if err != nil {
			return nil, err
		}
		tc := tls.Client(c, tlsConf)
		if err := tc.HandshakeContext(ctx); err != nil {
			c.Close()
			return nil, err
		}
		return tc, nil
	}
	overH1 := &http.Client{Transport: &http.Transport{DialContext: dialH1, DialTLSContext: dialH1, DisableKeepAlives: true}}
	h2Transport := &http.Transport{DialTLSContext: dialH2, ForceAttemptHTTP2: true}
	defer h2Transport.CloseIdleConnections()
	sendH1, sendH2 := HTTPHandler(overH1, ""), HTTPHandler(&http.Client{Transport: h2Transport}, "")
	f.Fuzz(func(t *testing.T, line string) {
		if strings.ContainsAny(line, "\n\r") {
			return // one line
		}
		line = strings.TrimSpace(line) // as ScanManifest stores it
		req, err := parseLine([]byte(line), "")
		if err != nil {
			return
		}
		var fields map[string]json.RawMessage
		if err := json.Unmarshal([]byte(line), &fields); err != nil {
			t.Fatalf("accepted line %q is not a JSON object: %v", line, err)
		}
		for k := range fields {
			switch k {
			case "id", "method", "url", "headers", "body", "body_file":
			default:
				t.Fatalf("accepted line %q has field %q", line, k)
			}
		}
		if req.BodyFile != "" {
			return // a file of this machine: not the property under test
		}
		task := &Task{ID: req.ID, Key: "k", Payload: []byte(line)}
		if err := sendH1(context.Background(), task); err != nil {
			t.Fatalf("accepted line %q not sendable over HTTP/1.1: %v", line, err)
		}
		if strings.HasPrefix(req.URL, "https:") {
			if err := sendH2(context.Background(), task); err != nil {
				t.Fatalf("accepted line %q not sendable over HTTP/2: %v", line, err)
			}
		}
	})
}
