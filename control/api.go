package control

import (
	"time"

	"github.com/rotini-dev/rotini/hold"
	"github.com/rotini-dev/rotini/reload"
)

// Status is the answer of GET /v1/status.
type Status struct {
	Version   string                  `json:"version"`
	Pid       int                     `json:"pid"`
	Started   time.Time               `json:"started"`
	Listeners []reload.ListenerStatus `json:"listeners"`
	Apps      []App                   `json:"apps"`
	Self      Self                    `json:"rotini"`
	// Holder: the `rotini hold` this rotini takes its sockets from, and
	// its tenants (the rotinis of the containers that share it).
	Holder *hold.HolderStatus `json:"holder,omitempty"`
}

// Self is rotini's own footprint, so that growth across many reloads is
// visible from outside (bench/rotations.sh reads it).
type Self struct {
	RSS        int64  `json:"rss_bytes"`
	HeapInuse  uint64 `json:"heap_inuse_bytes"`
	FDs        int    `json:"fds"`
	Goroutines int    `json:"goroutines"`
	Threads    int    `json:"threads"`
}

// App is one app of Status: reload.AppStatus with its last reload result in
// the wire form (reload.Result has no JSON names).
type App struct {
	reload.AppStatus
	LastReload *Result `json:"last_reload,omitempty"` // shadows AppStatus.LastReload
}

// Result is the outcome of one app's reload, as the API reports it.
type Result struct {
	App        string  `json:"app"`
	OK         bool    `json:"ok"`
	Generation int     `json:"generation"` // the generation serving afterwards
	Reason     string  `json:"reason,omitempty"`
	Seconds    float64 `json:"duration_seconds"`
}

// Duration is how long the reload took.
func (r Result) Duration() time.Duration {
	return time.Duration(r.Seconds * float64(time.Second))
}

func resultOf(r reload.Result) Result {
	return Result{App: r.App, OK: r.OK, Generation: r.Generation, Reason: r.Reason, Seconds: r.Duration.Seconds()}
}

// Line is one line of the NDJSON stream of POST /v1/reload?wait=1. Exactly
// one field is set: an Event while the reload runs, a Result per app, an
// Error when the wait gives up (timeout; the reload goes on), and last Done
// with OK true only when every app's result was ok.
type Line struct {
	Event  *reload.Event `json:"event,omitempty"`
	Result *Result       `json:"result,omitempty"`
	Error  string        `json:"error,omitempty"`
	Done   *Done         `json:"done,omitempty"`
}

// Done ends a reload stream.
type Done struct {
	OK bool `json:"ok"`
}

// Health is the answer of GET /v1/health.
type Health struct {
	OK     bool   `json:"ok"`
	Reason string `json:"reason,omitempty"`
}

// apiError is the body of every 4xx and 5xx answer.
type apiError struct {
	Error string `json:"error"`
}

// accepted is the body of a 202 answer.
type accepted struct {
	Accepted bool `json:"accepted"`
}
