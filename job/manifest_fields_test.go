package job

import (
	"context"
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
		{`{"id":"x","url":"http://:"}`, "has no host"},                // found by FuzzManifestLineSendable
		{`{"id":"x","url":"http://h/"}}`, "more than one JSON value"}, // found by FuzzManifestLineSendable
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
// net/http writes), and its field names are exactly the documented ones.
// The peer is a net/http server on 127.0.0.1 that answers 204 to anything,
// whatever host the line names; it must understand what was sent.
func FuzzManifestLineSendable(f *testing.F) {
	f.Add(`{"id":"a","url":"http://h/"}`)
	f.Add(`{"id":"a","method":"POST","url":"https://u:p@h:8443/p?q=1","headers":{"X-A":"b\tc","Idempotency-Key":"k"},"body":{"x":[1,2]}}`)
	f.Add(`{"id":"a","url":"http://h/","headers":{"X":"\r\n"}}`)
	f.Add(`{"id":"a","url":"http://h/","heAders":{"X":"y"}}`)
	f.Add(`{"id":"a","url":"http://h:65536/"}`)
	f.Add(`{"id":"a","method":"PUT","url":"http://[::1]:1/","body":"text"}`)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	var d net.Dialer
	dial := func(ctx context.Context, _, _ string) (net.Conn, error) {
		return d.DialContext(ctx, "tcp", srv.Listener.Addr().String())
	}
	client := &http.Client{Transport: &http.Transport{DialContext: dial, DialTLSContext: dial, DisableKeepAlives: true}}
	send := HTTPHandler(client, "")
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
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		if err := send(ctx, &Task{ID: req.ID, Key: "k", Payload: []byte(line)}); err != nil {
			t.Fatalf("accepted line %q not sendable: %v", line, err)
		}
		if ctx.Err() != nil {
			t.Fatalf("hang: %q", line)
		}
	})
}
