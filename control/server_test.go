package control

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/go-hclog"

	"github.com/rotini-dev/rotini/sockets"
)

// Protocol tests: a real socket in t.TempDir(), a fake backend, no
// processes.

// testLimits are defaultLimits with waits short enough for tests.
func testLimits() limits {
	l := defaultLimits
	l.readHeader, l.read, l.idle, l.write = 300*time.Millisecond, time.Second, time.Second, time.Second
	l.status = time.Second
	return l
}

// syncBuffer is a log destination safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type testServer struct {
	*Server
	path string
	log  *syncBuffer
	hc   *http.Client
}

func startServer(t *testing.T, b Backend, lim limits) *testServer {
	t.Helper()
	path := filepath.Join(t.TempDir(), "run", "ctl.sock")
	buf := &syncBuffer{}
	log := hclog.New(&hclog.LoggerOptions{Name: "rotini", Level: hclog.Debug, Output: buf})
	s, err := serve(Options{Path: path, Log: log, Version: "1.2.3"}, b, lim)
	if err != nil {
		t.Fatalf("serve: %v", err)
	}
	t.Cleanup(s.Close)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server log:\n%s", buf.String())
		}
	})
	return &testServer{Server: s, path: path, log: buf, hc: unixHTTP(path)}
}

func unixHTTP(path string) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
		DisableKeepAlives: true,
	}}
}

// call makes one request and returns the status and the body.
func (s *testServer) call(t *testing.T, method, target string, body io.Reader) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, "http://rotini"+target, body)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := s.hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, target, err)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/") {
		t.Errorf("%s %s: Content-Type %q, want JSON", method, target, ct)
	}
	return resp.StatusCode, b
}

func TestControlStatus(t *testing.T) {
	s := startServer(t, newFake(), testLimits())
	for _, target := range []string{"/v1/status", "/status"} {
		code, body := s.call(t, "GET", target, nil)
		if code != 200 {
			t.Fatalf("GET %s: %d %s", target, code, body)
		}
		var st Status
		if err := json.Unmarshal(body, &st); err != nil {
			t.Fatalf("GET %s: %v\n%s", target, err, body)
		}
		if st.Version != "1.2.3" || st.Pid != os.Getpid() || st.Started.IsZero() {
			t.Errorf("GET %s: version %q pid %d started %v", target, st.Version, st.Pid, st.Started)
		}
		want := &Result{App: "web", OK: true, Generation: 6, Duration: 1300 * time.Millisecond}
		if diff := cmp.Diff(want, st.Apps[0].LastReload); diff != "" {
			t.Errorf("last reload (-want +got):\n%s", diff)
		}
		if len(st.Apps) != 2 || st.Apps[0].Serving != 6 || len(st.Apps[0].Generations[0].Workers) != 2 {
			t.Errorf("apps: %+v", st.Apps)
		}
		if diff := cmp.Diff([]sockets.ListenerStatus{{Name: "http", Address: "127.0.0.1:8000"}}, st.Listeners); diff != "" {
			t.Errorf("listeners (-want +got):\n%s", diff)
		}
		// The wire names are the API: check a few literally.
		for _, key := range []string{`"last_reload":{"app":"web","ok":true`, `"rss_bytes":`, `"generations":`, `"listeners":[{"name":"http"`} {
			if !bytes.Contains(body, []byte(key)) {
				t.Errorf("GET %s: body lacks %s:\n%s", target, key, body)
			}
		}
	}
}

func TestControlErrors(t *testing.T) {
	s := startServer(t, newFake(), testLimits())
	tests := []struct {
		name, method, target string
		body                 io.Reader
		code                 int
		want                 string // in the error message
	}{
		{name: "unknown path", method: "GET", target: "/v1/nope", code: 404, want: "no endpoint"},
		{name: "root", method: "GET", target: "/", code: 404, want: "GET /v1/status"},
		{name: "nested", method: "GET", target: "/v1/status/x", code: 404, want: "no endpoint"},
		{name: "wrong method", method: "POST", target: "/v1/status", code: 405, want: "takes GET"},
		{name: "reload by GET", method: "GET", target: "/v1/reload", code: 405, want: "takes POST"},
		{name: "unknown parameter", method: "POST", target: "/v1/reload?apps=web", code: 400, want: `unknown parameter "apps"`},
		{name: "parameter on status", method: "GET", target: "/v1/status?x=1", code: 400, want: `unknown parameter "x"`},
		{name: "bad query", method: "POST", target: "/v1/reload?app=%zz", code: 400, want: "bad query"},
		{name: "unknown app", method: "POST", target: "/v1/reload?app=api", code: 400, want: `app: no app named "api" (apps: web, jobs)`},
		{name: "empty app", method: "POST", target: "/v1/reload?app=", code: 400, want: "app: empty name"},
		{name: "bad wait", method: "POST", target: "/v1/reload?wait=maybe", code: 400, want: "wait: want 1, 0"},
		{name: "bad timeout", method: "POST", target: "/v1/reload?wait=1&timeout=soon", code: 400, want: "timeout: want a duration"},
		{name: "negative timeout", method: "POST", target: "/v1/reload?wait=1&timeout=-1s", code: 400, want: "timeout:"},
		{name: "two timeouts", method: "POST", target: "/v1/reload?timeout=1s&timeout=2s", code: 400, want: "timeout: given 2 times"},
		{name: "no workers", method: "POST", target: "/v1/scale?app=web", code: 400, want: "workers: missing"},
		{name: "bad workers", method: "POST", target: "/v1/scale?workers=three", code: 400, want: "workers: want a whole number"},
		{name: "zero workers", method: "POST", target: "/v1/scale?workers=0", code: 400, want: "workers: want a whole number"},
		{name: "too many workers", method: "POST", target: "/v1/scale?workers=100000", code: 400, want: "workers: at most 1000"},
		{name: "scale unknown app", method: "POST", target: "/v1/scale?app=nope&workers=2", code: 400, want: `no app named "nope"`},
		{name: "huge body", method: "POST", target: "/v1/reload", body: bytes.NewReader(make([]byte, 1<<20)), code: 413, want: "no endpoint takes a body"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := s.call(t, tt.method, tt.target, tt.body)
			var e apiError
			if err := json.Unmarshal(body, &e); err != nil {
				t.Fatalf("body is not JSON: %v\n%s", err, body)
			}
			if code != tt.code || !strings.Contains(e.Error, tt.want) {
				t.Errorf("%s %s: %d %q, want %d and an error with %q", tt.method, tt.target, code, e.Error, tt.code, tt.want)
			}
		})
	}
}

func TestControlReload(t *testing.T) {
	f := newFake()
	s := startServer(t, f, testLimits())
	code, body := s.call(t, "POST", "/v1/reload?app=web", nil)
	if code != 202 || strings.TrimSpace(string(body)) != `{"accepted":true}` {
		t.Fatalf("reload without wait: %d %s", code, body)
	}
	// A small body is read and ignored (curl -d '').
	if code, body := s.call(t, "POST", "/reload", strings.NewReader("x")); code != 202 {
		t.Fatalf("reload with a body: %d %s", code, body)
	}
	if diff := cmp.Diff([][]string{{"web"}, nil}, f.reloads); diff != "" {
		t.Errorf("reloads (-want +got):\n%s", diff)
	}
}

// readLines parses an NDJSON stream.
func readLines(t *testing.T, body []byte) []Line {
	t.Helper()
	var out []Line
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		var l Line
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		out = append(out, l)
	}
	return out
}

// kinds summarizes a stream: event kinds, "result:APP:ok|fail", "error",
// "done:true|false".
func kinds(lines []Line) []string {
	var out []string
	for _, l := range lines {
		switch {
		case l.Event != nil:
			out = append(out, l.Event.App+":"+string(l.Event.Kind))
		case l.Result != nil:
			s := "ok"
			if !l.Result.OK {
				s = "fail"
			}
			out = append(out, "result:"+l.Result.App+":"+s)
		case l.Error != "":
			out = append(out, "error")
		case l.Done != nil:
			if l.Done.OK {
				out = append(out, "done:true")
			} else {
				out = append(out, "done:false")
			}
		}
	}
	return out
}

// byApp groups the steps of kinds by app ("" for error and done).
func byApp(ks []string) map[string][]string {
	m := map[string][]string{}
	for _, k := range ks {
		app, _, _ := strings.Cut(strings.TrimPrefix(k, "result:"), ":")
		if strings.HasPrefix(k, "done:") || k == "error" {
			app = ""
		}
		m[app] = append(m[app], k)
	}
	return m
}

func TestControlReloadWait(t *testing.T) {
	tests := []struct {
		name   string
		target string
		fail   map[string]string
		want   []string
		reason string
	}{
		{
			name:   "one app",
			target: "/v1/reload?app=web&wait=1&timeout=10s",
			want:   []string{"web:starting", "web:generation", "web:worker-ready", "web:worker-ready", "web:ready", "web:draining", "web:done", "result:web:ok", "done:true"},
		},
		{
			name:   "every app, one fails",
			target: "/v1/reload?wait=true",
			fail:   map[string]string{"jobs": "worker 0 (pid 7) of generation 2 exited with code 3 before it was ready"},
			want: []string{"web:starting", "web:generation", "web:worker-ready", "web:worker-ready", "web:ready", "web:draining", "web:done", "result:web:ok",
				"jobs:starting", "jobs:generation", "jobs:failed", "result:jobs:fail", "done:false"},
			reason: "exited with code 3",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake()
			f.fail = tt.fail
			s := startServer(t, f, testLimits())
			code, body := s.call(t, "POST", tt.target, nil)
			if code != 200 {
				t.Fatalf("%d %s", code, body)
			}
			lines := readLines(t, body)
			// Apps reload concurrently: compare each app's steps in order.
			if diff := cmp.Diff(byApp(tt.want), byApp(kinds(lines))); diff != "" {
				t.Errorf("stream (-want +got):\n%s\n%s", diff, body)
			}
			if last := lines[len(lines)-1]; last.Done == nil {
				t.Errorf("the last line is not done: %+v", last)
			}
			for _, l := range lines {
				if l.Result != nil && !l.Result.OK && !strings.Contains(l.Result.Reason, tt.reason) {
					t.Errorf("reason %q lacks %q", l.Result.Reason, tt.reason)
				}
			}
		})
	}
}

// A reload that outlasts the wait ends the stream with an error, and the
// late result does not block the backend.
func TestControlReloadWaitTimeout(t *testing.T) {
	f := newFake()
	late := make(chan chan<- Result, 1)
	f.reloadFn = func(names []string, reply chan<- Result, progress chan<- Event) { late <- reply }
	s := startServer(t, f, testLimits())
	start := time.Now()
	code, body := s.call(t, "POST", "/v1/reload?app=web&wait=1&timeout=200ms", nil)
	if code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	lines := readLines(t, body)
	if diff := cmp.Diff([]string{"error", "done:false"}, kinds(lines)); diff != "" {
		t.Fatalf("stream (-want +got):\n%s\n%s", diff, body)
	}
	if !strings.Contains(lines[0].Error, "gave up waiting after 200ms: web still reloading") {
		t.Errorf("error %q", lines[0].Error)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the wait took %s", d)
	}
	select {
	case (<-late) <- Result{App: "web", OK: true}:
	default:
		t.Error("the backend would block sending a result nobody waits for")
	}
}

// A client that leaves ends its stream at once; the backend never blocks.
func TestControlReloadWaitClientLeaves(t *testing.T) {
	f := newFake()
	late := make(chan chan<- Result, 1)
	f.reloadFn = func(names []string, reply chan<- Result, progress chan<- Event) { late <- reply }
	s := startServer(t, f, testLimits())
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "POST", "http://rotini/v1/reload?wait=1", nil)
	resp, err := s.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	reply := <-late
	if n := s.h.streams.Load(); n != 1 {
		t.Fatalf("%d streams, want 1", n)
	}
	cancel()
	resp.Body.Close()
	deadline := time.Now().Add(5 * time.Second)
	for s.h.streams.Load() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the stream still runs 5s after its client left")
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, app := range []string{"web", "jobs"} {
		select {
		case reply <- Result{App: app, OK: true}:
		default:
			t.Errorf("the backend would block sending %s's result", app)
		}
	}
}

func TestControlHealth(t *testing.T) {
	f := newFake()
	s := startServer(t, f, testLimits())
	if code, body := s.call(t, "GET", "/v1/health", nil); code != 200 || strings.TrimSpace(string(body)) != `{"ok":true}` {
		t.Errorf("healthy: %d %s", code, body)
	}
	f.mu.Lock()
	f.healthy, f.reason = false, "app web: generation 1 is not ready"
	f.mu.Unlock()
	if code, body := s.call(t, "GET", "/health", nil); code != 503 || strings.TrimSpace(string(body)) != `{"ok":false,"reason":"app web: generation 1 is not ready"}` {
		t.Errorf("unhealthy: %d %s", code, body)
	}
}

func TestControlScaleAndStop(t *testing.T) {
	f := newFake()
	s := startServer(t, f, testLimits())
	if code, body := s.call(t, "POST", "/v1/scale?app=web&workers=3", nil); code != 200 {
		t.Errorf("scale: %d %s", code, body)
	}
	if code, body := s.call(t, "POST", "/v1/scale?workers=2", nil); code != 200 {
		t.Errorf("scale all: %d %s", code, body)
	}
	if code, body := s.call(t, "POST", "/v1/stop", nil); code != 202 {
		t.Errorf("stop: %d %s", code, body)
	}
	select {
	case <-f.stopped:
	case <-time.After(5 * time.Second):
		t.Fatal("Stop not called")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if diff := cmp.Diff([]string{"web=3", "=2"}, f.scales); diff != "" {
		t.Errorf("scales (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]bool{false}, f.stops); diff != "" {
		t.Errorf("stops (-want +got):\n%s", diff)
	}
}

func TestControlPanicIsRecoveredAndLogged(t *testing.T) {
	f := newFake()
	f.panics = true
	s := startServer(t, f, testLimits())
	code, body := s.call(t, "GET", "/v1/status", nil)
	if code != 500 || !strings.Contains(string(body), `"error":"internal error: status exploded"`) {
		t.Errorf("%d %s", code, body)
	}
	if log := s.log.String(); !strings.Contains(log, "[ERROR] rotini: panic serving a request") {
		t.Errorf("the panic is not in the log:\n%s", log)
	}
	f.mu.Lock()
	f.panics = false
	f.mu.Unlock()
	if code, body := s.call(t, "GET", "/v1/status", nil); code != 200 {
		t.Errorf("after the panic: %d %s", code, body)
	}
}

func TestControlSocketFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a", "b", "ctl.sock")
	s, err := Serve(Options{Path: path, Mode: 0o660}, newFake())
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o660 {
		t.Errorf("socket mode %v, want a socket with 0660", fi.Mode())
	}
	// No temporary directory is left behind.
	if ents, _ := os.ReadDir(filepath.Dir(path)); len(ents) != 1 {
		t.Errorf("directory holds %d entries, want only the socket", len(ents))
	}
	// A second server on a live socket is refused.
	if _, err := Serve(Options{Path: path}, newFake()); err == nil || !strings.Contains(err.Error(), "another process is listening") {
		t.Errorf("second Serve: %v", err)
	}
	s.Close()
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket still there after Close: %v", err)
	}

	// A stale socket (its listener gone without removing it) is replaced.
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	l.Close()
	s, err = Serve(Options{Path: path}, newFake())
	if err != nil {
		t.Fatalf("Serve over a stale socket: %v", err)
	}
	if fi, _ := os.Lstat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("default mode %v, want 0600", fi.Mode().Perm())
	}
	// Close leaves alone a file that is no longer its socket.
	os.Remove(path)
	os.WriteFile(path, []byte("mine"), 0o644)
	s.Close()
	if b, _ := os.ReadFile(path); string(b) != "mine" {
		t.Errorf("Close removed a file it did not make")
	}
	// A file that is not a socket is never replaced.
	if _, err := Serve(Options{Path: path}, newFake()); err == nil || !strings.Contains(err.Error(), "is not a socket") {
		t.Errorf("Serve over a regular file: %v", err)
	}
}

// Clients that connect and send nothing, or half a request, are cut off
// after the header timeout, and hold no more than maxConns slots meanwhile:
// the next client is served once they are gone.
func TestControlStalledClients(t *testing.T) {
	lim := testLimits()
	lim.maxConns = 4
	s := startServer(t, newFake(), lim)
	var conns []net.Conn
	for i := 0; i < lim.maxConns+2; i++ {
		c, err := net.Dial("unix", s.path)
		if err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			c.Write([]byte("GET /v1/status HTTP/1.1\r\nHost: x\r\n")) // never finished
		}
		conns = append(conns, c)
	}
	start := time.Now()
	code, _ := s.call(t, "GET", "/v1/status", nil)
	if code != 200 {
		t.Errorf("status with stalled clients: %d", code)
	}
	if d := time.Since(start); d > 10*lim.readHeader {
		t.Errorf("status took %s with stalled clients", d)
	}
	for _, c := range conns {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err := io.ReadAll(c) // the server closes it (after a 408, or not)
		if err != nil {
			t.Errorf("stalled client not cut off: %v", err)
		}
		c.Close()
	}
}

// Many clients at once all get answers.
func TestControlManyClients(t *testing.T) {
	lim := testLimits()
	lim.maxConns = 8
	s := startServer(t, newFake(), lim)
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i := 0; i < 100; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := s.hc.Get("http://rotini/v1/health")
			if err != nil {
				errs <- err
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				errs <- errors.New(resp.Status)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestControlHeaderLimit(t *testing.T) {
	s := startServer(t, newFake(), testLimits())
	req, _ := http.NewRequest("GET", "http://rotini/v1/status", nil)
	req.Header.Set("X-Big", strings.Repeat("a", 64<<10))
	resp, err := s.hc.Do(req)
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("64 KiB of headers: %s", resp.Status)
		}
	} else if !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, syscall.EPIPE) {
		t.Logf("64 KiB of headers: %v", err)
	}
	if code, _ := s.call(t, "GET", "/v1/health", nil); code != 200 {
		t.Errorf("health after: %d", code)
	}
}

// Even without any timeout, clients that connect and send nothing cannot
// keep a newcomer out: it takes the place of the one idle the longest.
func TestControlIdleClientsMakeRoom(t *testing.T) {
	lim := testLimits()
	lim.maxConns, lim.readHeader, lim.read, lim.idle = 2, 0, 0, 0
	s := startServer(t, newFake(), lim)
	var idle []net.Conn
	for range lim.maxConns {
		c, err := net.Dial("unix", s.path)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		idle = append(idle, c)
	}
	if code, _ := s.call(t, "GET", "/v1/health", nil); code != 200 {
		t.Fatalf("health with every slot held by an idle client: %d", code)
	}
	idle[0].SetReadDeadline(time.Now().Add(20 * time.Second)) // a bound, not an expectation
	if n, err := idle[0].Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Errorf("the oldest idle client was not closed to make room: %d, %v", n, err)
	}
}

// The negative control of TestControlIdleClientsMakeRoom: a client in the
// middle of a request is never cut off to make room, so without the header
// timeout, clients stalled mid-request hold every slot and the next client
// waits.
func TestControlBusyClientsAreNotCutOff(t *testing.T) {
	lim := testLimits()
	lim.maxConns, lim.readHeader, lim.read = 2, 0, 0
	s := startServer(t, newFake(), lim)
	var busy []net.Conn
	for range lim.maxConns {
		c, err := net.Dial("unix", s.path)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write([]byte("GET /v1/status HTTP/1.1\r\nHost: x\r\n")) // never finished
		busy = append(busy, c)
	}
	hc := unixHTTP(s.path)
	hc.Timeout = 3 * lim.minIdle
	resp, err := hc.Get("http://rotini/v1/health")
	if err == nil {
		resp.Body.Close()
		t.Fatal("served with every slot held by a client mid-request: one was cut off")
	}
	for _, c := range busy {
		c.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
		if _, err := c.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("a client mid-request was closed: %v", err)
		}
	}
}

// A socket whose file was removed is made again by Recreate; one still in
// place is left alone, and a connection open on the old socket is served
// to its end.
func TestControlRecreate(t *testing.T) {
	s := startServer(t, newFake(), testLimits())
	if made, err := s.Recreate(); made || err != nil {
		t.Fatalf("Recreate with the socket in place: %t, %v", made, err)
	}
	old, err := net.Dial("unix", s.path)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	oldR := bufio.NewReader(old)
	get := func(close bool) (int, error) {
		req, _ := http.NewRequest("GET", "http://rotini/v1/health", nil)
		req.Close = close
		if err := req.Write(old); err != nil {
			return 0, err
		}
		resp, err := http.ReadResponse(oldR, req)
		if err != nil {
			return 0, err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	if code, err := get(false); code != 200 {
		t.Fatalf("health on a kept-alive connection: %d, %v", code, err)
	}
	if err := os.Remove(s.path); err != nil {
		t.Fatal(err)
	}
	if _, err := net.Dial("unix", s.path); err == nil {
		t.Fatal("the removed socket still answers: the test proves nothing")
	}
	if made, err := s.Recreate(); !made || err != nil {
		t.Fatalf("Recreate after removal: %t, %v", made, err)
	}
	if code, _ := s.call(t, "GET", "/v1/health", nil); code != 200 {
		t.Errorf("health on the re-created socket: %d", code)
	}
	if code, err := get(true); code != 200 {
		t.Errorf("the kept-alive connection of the old socket: %d, %v", code, err)
	}
	s.Close()
	if _, err := os.Lstat(s.path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Close left the re-created socket: %v", err)
	}
}
