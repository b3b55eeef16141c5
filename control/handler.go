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
	"github.com/rotini-dev/rotini/reload"
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
		Listeners: h.b.Listeners(), Apps: []App{}, Self: self(),
	}
	if st.Listeners == nil {
		st.Listeners = []reload.ListenerStatus{}
	}
	if hb, ok := h.b.(interface{ Holder() *hold.HolderStatus }); ok {
		st.Holder = hb.Holder() // as of the Listeners call above
	}
	for _, a := range h.b.Status(h.lim.status) {
		app := App{AppStatus: a}
		if a.LastReload != nil {
			res := resultOf(*a.LastReload)
			app.LastReload = &res
		}
		st.Apps = append(st.Apps, app)
	}
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

func (h *handler) reload(w http.ResponseWriter, r *http.Request, q url.Values) {
	var names []string
	for _, n := range q["app"] {
		if n == "" {
			h.error(w, http.StatusBadRequest, "app: empty name; leave app out to reload every app")
			return
		}
		if !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	wait, err := boolParam(q, "wait")
	if err != nil {
		h.error(w, http.StatusBadRequest, "%v", err)
		return
	}
	timeout := h.lim.defaultWait
	if s, err := single(q, "timeout"); err != nil {
		h.error(w, http.StatusBadRequest, "%v", err)
		return
	} else if s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 || d > h.lim.maxWait {
			h.error(w, http.StatusBadRequest, "timeout: want a duration such as 60s or 5m, above 0 and at most %s, not %q", h.lim.maxWait, s)
			return
		}
		timeout = d
	}
	var known []string
	for _, a := range h.b.Status(h.lim.status) {
		known = append(known, a.Name)
	}
	if len(known) == 0 {
		h.error(w, http.StatusServiceUnavailable, "no app is running (rotini is stopping?)")
		return
	}
	for _, n := range names {
		if !slices.Contains(known, n) {
			h.error(w, http.StatusBadRequest, "app: no app named %q (apps: %s)", n, strings.Join(known, ", "))
			return
		}
	}
	h.log.Info("reload requested on the control socket", "apps", strings.Join(names, ","), "wait", wait)
	if !wait {
		h.b.ReloadApps(names, nil, nil)
		writeJSON(w, http.StatusAccepted, accepted{Accepted: true})
		return
	}
	pending := names
	if len(pending) == 0 {
		pending = known
	}
	h.streams.Add(1)
	defer h.streams.Add(-1)
	// Room for every result, so that no app ever blocks on a client that
	// has left; events are sent without blocking and may be dropped.
	reply := make(chan reload.Result, len(pending)+len(known))
	progress := make(chan reload.Event, 256)
	h.b.ReloadApps(names, reply, progress)

	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	if rc.Flush() != nil { // the client sees the 200 before the first step
		return
	}
	send := func(l Line) bool {
		b, err := json.Marshal(l)
		if err != nil {
			return false
		}
		h.deadline(w)
		if _, err := w.Write(append(b, '\n')); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	drain := func() bool {
		for {
			select {
			case e := <-progress:
				if !send(Line{Event: &e}) {
					return false
				}
			default:
				return true
			}
		}
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	ok := true
	for len(pending) > 0 {
		select {
		case e := <-progress:
			if !send(Line{Event: &e}) {
				return
			}
		case res := <-reply:
			// finish() emits the last event before the result: send it first.
			if !drain() {
				return
			}
			wr := resultOf(res)
			if !send(Line{Result: &wr}) {
				return
			}
			ok = ok && res.OK
			if i := slices.Index(pending, res.App); i >= 0 {
				pending = slices.Delete(slices.Clone(pending), i, i+1)
			} else {
				pending = pending[1:]
			}
		case <-timer.C:
			send(Line{Error: fmt.Sprintf("gave up waiting after %s: %s still reloading; the reload goes on in rotini", timeout, strings.Join(pending, ", "))})
			send(Line{Done: &Done{OK: false}})
			return
		case <-r.Context().Done():
			h.log.Debug("reload waiter left before the end", "apps", strings.Join(pending, ","))
			return
		}
	}
	if drain() {
		send(Line{Done: &Done{OK: ok}})
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
