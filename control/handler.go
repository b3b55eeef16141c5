package control

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/rotini-dev/rotini/hold"
	"github.com/rotini-dev/rotini/procfs"
	"github.com/rotini-dev/rotini/sockets"
)

// handler serves the API. Every answer is JSON, errors included.
type handler struct {
	b       Backend
	log     hclog.Logger
	version string
	started time.Time
	pid     int
	lim     limits
	streams atomic.Int32 // reload-wait streams in progress (tests read it)
}

type route struct {
	method string
	params []string // the query parameters it takes
	serve  func(h *handler, w http.ResponseWriter, r *http.Request, q url.Values)
}

var routes = map[string]route{
	"status": {http.MethodGet, nil, (*handler).status},
	"reload": {http.MethodPost, []string{"app", "wait", "timeout"}, (*handler).reload},
	"scale":  {http.MethodPost, []string{"app", "workers"}, (*handler).scale},
	"health": {http.MethodGet, nil, (*handler).health},
	"stop":   {http.MethodPost, nil, (*handler).stop},
}

const endpoints = "GET /v1/status, POST /v1/reload, POST /v1/scale, GET /v1/health, POST /v1/stop"

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			h.log.Error("panic serving a request", "method", r.Method, "path", pathOf(r), "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			h.error(w, http.StatusInternalServerError, "internal error: %v", v)
		}
	}()
	h.deadline(w)
	// No endpoint takes a body; read what comes, bounded, so that the
	// connection can notice when its client leaves.
	if r.Body == nil {
		r.Body = http.NoBody
	}
	r.Body = http.MaxBytesReader(w, r.Body, h.lim.maxBody)
	if _, err := io.Copy(io.Discard, r.Body); err != nil {
		if mbe := (*http.MaxBytesError)(nil); errors.As(err, &mbe) {
			h.error(w, http.StatusRequestEntityTooLarge, "request body over %d bytes: no endpoint takes a body", mbe.Limit)
			return
		}
		h.error(w, http.StatusBadRequest, "read request body: %v", err)
		return
	}

	path := pathOf(r)
	name, ok := strings.CutPrefix(path, "/v1/")
	if !ok {
		name = strings.TrimPrefix(path, "/")
	}
	rt, found := routes[name]
	if !found || strings.Contains(name, "/") {
		h.error(w, http.StatusNotFound, "no endpoint %q; the endpoints are %s", path, endpoints)
		return
	}
	if r.Method != rt.method {
		w.Header().Set("Allow", rt.method)
		h.error(w, http.StatusMethodNotAllowed, "/v1/%s takes %s, not %q", name, rt.method, r.Method)
		return
	}
	q, err := url.ParseQuery(rawQuery(r))
	if err != nil {
		h.error(w, http.StatusBadRequest, "bad query string: %v", err)
		return
	}
	for k := range q {
		if !slices.Contains(rt.params, k) {
			want := "none"
			if len(rt.params) > 0 {
				want = strings.Join(rt.params, ", ")
			}
			h.error(w, http.StatusBadRequest, "unknown parameter %q for /v1/%s (it takes: %s)", k, name, want)
			return
		}
	}
	rt.serve(h, w, r, q)
}

func pathOf(r *http.Request) string {
	if r.URL == nil {
		return ""
	}
	return r.URL.Path
}

func rawQuery(r *http.Request) string {
	if r.URL == nil {
		return ""
	}
	return r.URL.RawQuery
}

// deadline bounds the next write to the client: one that reads nothing
// costs at most lim.write per write.
func (h *handler) deadline(w http.ResponseWriter) {
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(h.lim.write))
}

func (h *handler) status(w http.ResponseWriter, r *http.Request, _ url.Values) {
	st := Status{
		Version: h.version, Pid: h.pid, Started: h.started,
		Listeners: h.b.Listeners(), Apps: []AppStatus{}, Self: self(),
	}
	if st.Listeners == nil {
		st.Listeners = []sockets.ListenerStatus{}
	}
	if hb, ok := h.b.(interface{ Holder() *hold.HolderStatus }); ok {
		st.Holder = hb.Holder() // as of the Listeners call above
	}
	st.Apps = append(st.Apps, h.b.Status(h.lim.status)...)
	writeJSON(w, http.StatusOK, st)
}

func (h *handler) health(w http.ResponseWriter, r *http.Request, _ url.Values) {
	ok, reason := h.b.Health()
	if !ok {
		writeJSON(w, http.StatusServiceUnavailable, Health{OK: false, Reason: reason})
		return
	}
	writeJSON(w, http.StatusOK, Health{OK: true})
}

func (h *handler) stop(w http.ResponseWriter, r *http.Request, _ url.Values) {
	h.log.Info("stop requested on the control socket")
	writeJSON(w, http.StatusAccepted, accepted{Accepted: true})
	go h.b.Stop(false)
}

func (h *handler) scale(w http.ResponseWriter, r *http.Request, q url.Values) {
	app, err := single(q, "app")
	if err != nil {
		h.error(w, http.StatusBadRequest, "%v", err)
		return
	}
	s, err := single(q, "workers")
	if err != nil {
		h.error(w, http.StatusBadRequest, "%v", err)
		return
	}
	n, err := strconv.Atoi(s)
	switch {
	case s == "":
		h.error(w, http.StatusBadRequest, "workers: missing; give the number of workers, e.g. workers=4")
		return
	case err != nil || n < 1:
		h.error(w, http.StatusBadRequest, "workers: want a whole number of at least 1, not %q", s)
		return
	case n > h.lim.maxWorkers:
		h.error(w, http.StatusBadRequest, "workers: at most %d, not %d", h.lim.maxWorkers, n)
		return
	}
	if err := h.b.ScaleApp(app, n); err != nil {
		h.error(w, http.StatusBadRequest, "%v", err)
		return
	}
	h.log.Info("scale requested on the control socket", "app", app, "workers", n)
	writeJSON(w, http.StatusOK, struct {
		App     string `json:"app,omitempty"`
		Workers int    `json:"workers"`
	}{app, n})
}

// reload is POST /v1/reload. Once parseReload has checked the request, it
// takes two steps: startReload hands it to the backend; then, if the
// client waits, streamReload writes the reload's events and each app's
// result as NDJSON until the last result, the timeout or the client's
// leaving, whichever comes first.
func (h *handler) reload(w http.ResponseWriter, r *http.Request, q url.Values) {
	req, err := h.parseReload(q)
	if err != nil {
		h.error(w, err.code, "%s", err.msg)
		return
	}
	if !req.wait {
		h.startReload(req)
		writeJSON(w, http.StatusAccepted, accepted{Accepted: true})
		return
	}
	h.streams.Add(1) // from before the backend sees the request
	defer h.streams.Add(-1)
	h.streamReload(w, r, h.startReload(req))
}

// reloadParams are the checked parameters of a POST /v1/reload.
type reloadParams struct {
	names   []string // as asked, without repeats; empty: every app
	apps    []string // the apps that will reload
	known   []string // every app
	wait    bool
	timeout time.Duration
}

// httpError is a request the handler refuses.
type httpError struct {
	code int
	msg  string
}

func badRequest(format string, a ...any) *httpError {
	return &httpError{http.StatusBadRequest, fmt.Sprintf(format, a...)}
}

// parseReload checks the query of POST /v1/reload against the apps the
// backend runs.
func (h *handler) parseReload(q url.Values) (reloadParams, *httpError) {
	req := reloadParams{timeout: h.lim.defaultWait}
	for _, n := range q["app"] {
		if n == "" {
			return req, badRequest("app: empty name; leave app out to reload every app")
		}
		if !slices.Contains(req.names, n) {
			req.names = append(req.names, n)
		}
	}
	var err error
	if req.wait, err = boolParam(q, "wait"); err != nil {
		return req, badRequest("%v", err)
	}
	if s, err := single(q, "timeout"); err != nil {
		return req, badRequest("%v", err)
	} else if s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 || d > h.lim.maxWait {
			return req, badRequest("timeout: want a duration such as 60s or 5m, above 0 and at most %s, not %q", h.lim.maxWait, s)
		}
		req.timeout = d
	}
	var known []string
	for _, a := range h.b.Status(h.lim.status) {
		known = append(known, a.Name)
	}
	if len(known) == 0 {
		return req, &httpError{http.StatusServiceUnavailable, "no app is running (rotini is stopping?)"}
	}
	for _, n := range req.names {
		if !slices.Contains(known, n) {
			return req, badRequest("app: no app named %q (apps: %s)", n, strings.Join(known, ", "))
		}
	}
	req.known, req.apps = known, req.names
	if len(req.apps) == 0 {
		req.apps = known
	}
	return req, nil
}

// reloadRun is a reload a client waits for.
type reloadRun struct {
	pending  []string // apps whose result has not come yet
	timeout  time.Duration
	reply    <-chan Result
	progress <-chan Event
}

// startReload asks the backend for the reload; for a client that waits,
// it returns where the reload's events and results will come.
func (h *handler) startReload(req reloadParams) *reloadRun {
	h.log.Info("reload requested on the control socket", "apps", strings.Join(req.names, ","), "wait", req.wait)
	if !req.wait {
		h.b.ReloadApps(req.names, nil, nil)
		return nil
	}
	// Room for every result, so that no app ever blocks on a client that
	// has left; events are sent without blocking and may be dropped.
	reply := make(chan Result, len(req.apps)+len(req.known))
	progress := make(chan Event, 256)
	h.b.ReloadApps(req.names, reply, progress)
	return &reloadRun{pending: req.apps, timeout: req.timeout, reply: reply, progress: progress}
}

// streamReload writes run's events and results as they come, and a last
// Done line once every app has its result (or an Error and Done when the
// wait times out). The events that precede a result are written before it:
// an app sends its last event, then its result.
func (h *handler) streamReload(w http.ResponseWriter, r *http.Request, run *reloadRun) {
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	out := &lineWriter{h: h, w: w, rc: http.NewResponseController(w)}
	if out.rc.Flush() != nil { // the client sees the 200 before the first step
		return
	}
	timer := time.NewTimer(run.timeout)
	defer timer.Stop()
	ok := true
	for len(run.pending) > 0 {
		select {
		case e := <-run.progress:
			if !out.send(Line{Event: &e}) {
				return
			}
		case res := <-run.reply:
			if !out.events(run.progress) || !out.send(Line{Result: &res}) {
				return
			}
			ok = ok && res.OK
			run.got(res.App)
		case <-timer.C:
			out.send(Line{Error: fmt.Sprintf("gave up waiting after %s: %s still reloading; the reload goes on in rotini", run.timeout, strings.Join(run.pending, ", "))})
			out.send(Line{Done: &Done{OK: false}})
			return
		case <-r.Context().Done():
			h.log.Debug("reload waiter left before the end", "apps", strings.Join(run.pending, ","))
			return
		}
	}
	if out.events(run.progress) {
		out.send(Line{Done: &Done{OK: ok}})
	}
}

// got notes app's result.
func (run *reloadRun) got(app string) {
	if i := slices.Index(run.pending, app); i >= 0 {
		run.pending = slices.Delete(slices.Clone(run.pending), i, i+1)
	} else {
		run.pending = run.pending[1:]
	}
}

// lineWriter writes the lines of a stream, each flushed and bounded in
// time. Once a write fails, the client is gone: every send reports false.
type lineWriter struct {
	h  *handler
	w  http.ResponseWriter
	rc *http.ResponseController
}

func (o *lineWriter) send(l Line) bool {
	b, err := json.Marshal(l)
	if err != nil {
		return false
	}
	o.h.deadline(o.w)
	if _, err := o.w.Write(append(b, '\n')); err != nil {
		return false
	}
	return o.rc.Flush() == nil
}

// events writes the events waiting in progress.
func (o *lineWriter) events(progress <-chan Event) bool {
	for {
		select {
		case e := <-progress:
			if !o.send(Line{Event: &e}) {
				return false
			}
		default:
			return true
		}
	}
}

// single returns the one value of a query parameter ("" when absent).
func single(q url.Values, name string) (string, error) {
	switch vs := q[name]; len(vs) {
	case 0:
		return "", nil
	case 1:
		return vs[0], nil
	default:
		return "", fmt.Errorf("%s: given %d times, want at most once", name, len(vs))
	}
}

func boolParam(q url.Values, name string) (bool, error) {
	s, err := single(q, name)
	if err != nil {
		return false, err
	}
	if s == "" {
		return q.Has(name), nil // "?wait" alone means yes
	}
	b, err := strconv.ParseBool(s)
	if err != nil {
		return false, fmt.Errorf("%s: want 1, 0, true or false, not %q", name, s)
	}
	return b, nil
}

func (h *handler) error(w http.ResponseWriter, code int, format string, a ...any) {
	writeJSON(w, code, apiError{Error: fmt.Sprintf(format, a...)})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code, b = http.StatusInternalServerError, []byte(`{"error":"encode answer"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	w.Write(append(b, '\n'))
}

// self measures rotini's own process from /proc.
func self() Self {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	s := Self{Goroutines: runtime.NumGoroutine(), HeapInuse: ms.HeapInuse}
	if fds, err := procfs.FDs(os.Getpid()); err == nil {
		s.FDs = len(fds)
	}
	s.RSS, _ = procfs.RSS(os.Getpid())
	if st, err := procfs.Status(os.Getpid()); err == nil {
		s.Threads, _ = strconv.Atoi(st["Threads"])
	}
	return s
}
