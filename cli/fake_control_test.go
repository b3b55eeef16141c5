package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rotini-dev/rotini/control"
)

// fakeControl is a control socket whose answers a test scripts, in the way
// httptest serves a handler: the client verbs run against it as they would
// against rotini, and it records what they asked.
type fakeControl struct {
	path string

	mu   sync.Mutex
	reqs []string // "POST /v1/reload?app=web&wait=1"
}

// startFake serves routes ("POST /v1/reload" → handler) on a unix socket in
// t.TempDir until the test ends. A request with no route gets a 404 in
// the API's error form.
func startFake(t *testing.T, routes map[string]http.HandlerFunc) *fakeControl {
	t.Helper()
	f := &fakeControl{path: filepath.Join(t.TempDir(), "control.sock")}
	ln, err := net.Listen("unix", f.path)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.reqs = append(f.reqs, strings.TrimSuffix(r.Method+" "+r.URL.Path+"?"+r.URL.RawQuery, "?"))
		f.mu.Unlock()
		if h := routes[r.Method+" "+r.URL.Path]; h != nil {
			h(w, r)
			return
		}
		answer(w, http.StatusNotFound, map[string]string{"error": "no endpoint " + r.URL.Path})
	})}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("fake control socket: %v", err)
		}
	}()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})
	return f
}

// requests are the requests the fake got so far.
func (f *fakeControl) requests() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.reqs...)
}

// answer writes v as the API does: JSON with a status code.
func answer(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	w.Write(append(b, '\n'))
}

// stream answers a reload wait with lines, as NDJSON.
func stream(lines ...control.Line) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var b bytes.Buffer
		for _, l := range lines {
			j, err := json.Marshal(l)
			if err != nil {
				panic(err)
			}
			b.Write(append(j, '\n'))
		}
		w.Header().Set("Content-Type", "application/x-ndjson")
		w.Write(b.Bytes())
	}
}

// event is a Line with an event of app.
func event(app string, kind control.EventKind, gen int, msg string) control.Line {
	return control.Line{Event: &control.Event{Time: time.Now(), App: app, Kind: kind, Generation: gen, Message: msg}}
}

func result(r control.Result) control.Line { return control.Line{Result: &r} }

func done(ok bool) control.Line { return control.Line{Done: &control.Done{OK: ok}} }
