package control

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
)

// FuzzHandler feeds arbitrary requests to the handler: it must never panic
// (a recovered panic is logged at Error, which fails the test too), and
// every answer is JSON (NDJSON for a reload stream) with a 2xx, 4xx or 5xx
// status.
func FuzzHandler(f *testing.F) {
	seeds := []struct {
		method, path, query string
		body                []byte
	}{
		{"GET", "/v1/status", "", nil},
		{"GET", "/status", "", nil},
		{"POST", "/v1/reload", "app=web&wait=1&timeout=1s", nil},
		{"POST", "/v1/reload", "wait", nil},
		{"POST", "/v1/reload", "app=web&app=jobs&wait=true", []byte("{}")},
		{"POST", "/v1/reload", "timeout=1h1s", nil},
		{"POST", "/v1/scale", "app=web&workers=3", nil},
		{"POST", "/v1/scale", "workers=-1", nil},
		{"GET", "/v1/health", "", nil},
		{"POST", "/v1/stop", "", nil},
		{"DELETE", "/v1/../v1/status", "%%", []byte{0, 1, 2}},
		{"GET", "", ";;&&==", nil},
		{"P O S T", "/v1//reload", "app=%00", nil},
	}
	for _, s := range seeds {
		f.Add(s.method, s.path, s.query, s.body)
	}
	f.Fuzz(func(t *testing.T, method, path, query string, body []byte) {
		var logs strings.Builder
		log := hclog.New(&hclog.LoggerOptions{Level: hclog.Error, Output: &logs})
		lim := testLimits()
		lim.maxBody = 1 << 10
		h := &handler{b: newFake(), log: log, version: "fuzz", pid: 1, lim: lim}
		req := (&http.Request{
			Method:     method,
			URL:        &url.URL{Path: path, RawQuery: query},
			Proto:      "HTTP/1.1",
			ProtoMajor: 1, ProtoMinor: 1,
			Header:     http.Header{},
			Body:       io.NopCloser(bytes.NewReader(body)),
			Host:       "rotini",
			RemoteAddr: "@",
		}).WithContext(context.Background())
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)

		if logs.Len() > 0 {
			t.Fatalf("%s %q ?%q: logged an error:\n%s", method, path, query, logs.String())
		}
		code := rec.Code
		if code < 200 || code >= 600 || (code >= 300 && code < 400) {
			t.Fatalf("%s %q ?%q: status %d", method, path, query, code)
		}
		out := rec.Body.Bytes()
		if len(out) == 0 {
			t.Fatalf("%s %q ?%q: empty body", method, path, query)
		}
		sc := bufio.NewScanner(bytes.NewReader(out))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			if !json.Valid(sc.Bytes()) {
				t.Fatalf("%s %q ?%q: %d with a line that is not JSON: %q", method, path, query, code, sc.Text())
			}
		}
	})
}
