package control

import (
	"encoding/json"
	"math"
	"time"

	"github.com/rotini-dev/rotini/hold"
	"github.com/rotini-dev/rotini/sockets"
)

// The wire types of the API: what the server writes and the client reads.
// Their JSON names are a contract (users script `rotini status --json`):
// fields may be added, none renamed. The Backend produces them; the
// listeners' and the holder's come from packages sockets and hold, whose
// own protocol (tenant and holder) carries them too.

// Status is the answer of GET /v1/status.
type Status struct {
	Version   string                   `json:"version"`
	Pid       int                      `json:"pid"`
	Started   time.Time                `json:"started"`
	Listeners []sockets.ListenerStatus `json:"listeners"`
	Apps      []AppStatus              `json:"apps"`
	Self      Self                     `json:"rotini"`
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

// AppStatus describes one app.
type AppStatus struct {
	Name        string             `json:"name"`
	Serving     int                `json:"serving"`
	Workers     int                `json:"workers"`
	Mode        string             `json:"reload_mode"` // rotate, restart or signal
	Ready       bool               `json:"ready"`
	Generations []GenerationStatus `json:"generations"`
	Watch       *WatchStatus       `json:"watch,omitempty"`
	// LastStartError is the last worker that could not be started at all
	// (command not found, a missing dir, an unset env.NAME).
	LastStartError *StartError `json:"last_start_error,omitempty"`
	LastReload     *Result     `json:"last_reload,omitempty"`
}

// GenerationStatus describes one generation.
type GenerationStatus struct {
	Number  int       `json:"generation"`
	State   string    `json:"state"` // booting, serving or draining
	Ready   bool      `json:"ready"`
	Dir     string    `json:"dir,omitempty"`
	Started time.Time `json:"started"`
	// Proxy mode: the generation's loopback ports (worker index ->
	// listener name -> port), and the connections relayed to it now.
	Ports   map[int]map[string]int `json:"ports,omitempty"`
	Relayed int                    `json:"relayed"`
	Workers []WorkerStatus         `json:"workers"`
}

// WorkerStatus describes one live worker.
type WorkerStatus struct {
	Pid      int       `json:"pid"` // 0 while it is being started
	RSS      int64     `json:"rss_bytes"`
	Index    int       `json:"worker"`
	State    string    `json:"state"` // starting, ready or stopping
	Started  time.Time `json:"started"`
	Restarts int       `json:"restarts"`
}

// StartError says why a worker could not be started.
type StartError struct {
	Time       time.Time `json:"time"`
	Generation int       `json:"generation"`
	Worker     int       `json:"worker"`
	Error      string    `json:"error"`
}

// WatchStatus is what an app's code watcher is doing.
type WatchStatus struct {
	Mode string `json:"mode"` // inotify, or polling when any root is polled
	// Reason says why roots are polled ("/srv/app: nfs file system"), or
	// why inotify may miss changes when polling is off; empty otherwise.
	Reason     string       `json:"reason,omitempty"`
	Watches    int          `json:"watches"`               // inotify watches held
	LastChange *WatchChange `json:"last_change,omitempty"` // nil before the first change
	Changes    int          `json:"changes"`               // bursts of changes seen, each of which asked for a reload
}

// WatchChange is the last burst of changes a watcher saw.
type WatchChange struct {
	Paths []string  `json:"paths"` // up to 20 of the changed paths, in the order first seen
	Count int       `json:"count"` // distinct paths changed in the burst
	First time.Time `json:"first"`
	Last  time.Time `json:"last"`
}

// Result is the outcome of one reload of one app: an app's last reload in
// Status, and one line per app of a reload-wait stream.
type Result struct {
	App        string
	OK         bool
	Generation int // the generation serving afterwards
	Reason     string
	Duration   time.Duration
	// Message says the outcome in a line ("done: generation 3 serving,
	// in 1.2s"), as the done or failed Event of the reload says it; a
	// client shows it when that event did not reach it.
	Message string
}

// resultJSON is Result on the wire, where its duration is in seconds.
type resultJSON struct {
	App        string  `json:"app"`
	OK         bool    `json:"ok"`
	Generation int     `json:"generation"`
	Reason     string  `json:"reason,omitempty"`
	Seconds    float64 `json:"duration_seconds"`
	Message    string  `json:"message,omitempty"`
}

func (r Result) MarshalJSON() ([]byte, error) {
	return json.Marshal(resultJSON{App: r.App, OK: r.OK, Generation: r.Generation, Reason: r.Reason, Seconds: r.Duration.Seconds(), Message: r.Message})
}

func (r *Result) UnmarshalJSON(b []byte) error {
	var w resultJSON
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*r = Result{App: w.App, OK: w.OK, Generation: w.Generation, Reason: w.Reason, Message: w.Message,
		Duration: time.Duration(math.Round(w.Seconds * float64(time.Second)))}
	return nil
}

// Event is one step of a reload, streamed to `rotini reload --wait`. Its
// Message is written for people, whole: clients print it as it is.
type Event struct {
	Time       time.Time `json:"time"`
	App        string    `json:"app"`
	Kind       EventKind `json:"kind"`
	Generation int       `json:"generation,omitempty"`
	Ready      int       `json:"ready,omitempty"` // KindWorkerReady: workers ready so far
	Total      int       `json:"total,omitempty"` // workers the generation has
	Message    string    `json:"message"`
}

// EventKind says which step of a reload an Event is. A client must expect
// kinds it does not know (newer servers add them) and show their message.
type EventKind string

// The steps of a reload, in the order they happen. A reload that fails
// ends with KindFailed at whichever step it reached.
const (
	KindNote        EventKind = "note"         // the reload's config was read: a change it cannot apply (App is "rotini")
	KindQueued      EventKind = "queued"       // waits for the reload in progress, or for the first generation
	KindStarting    EventKind = "starting"     // the reload starts; Generation serves
	KindGeneration  EventKind = "generation"   // the new generation starts Total workers
	KindWorkerReady EventKind = "worker-ready" // Ready of its Total workers are ready
	KindReady       EventKind = "ready"        // the new generation serves
	KindDraining    EventKind = "draining"     // the old generation drains
	KindDone        EventKind = "done"         // the reload succeeded; Generation serves
	KindFailed      EventKind = "failed"       // the reload failed; see the Result's Reason
)

// Line is one line of the NDJSON stream of POST /v1/reload?wait=1. Exactly
// one field is set: an Event while the reload runs, a Result per app, an
// Error when the wait gives up (timeout; the reload goes on), and last Done
// with OK true only when every app's result was ok.
type Line struct {
	Event  *Event  `json:"event,omitempty"`
	Result *Result `json:"result,omitempty"`
	Error  string  `json:"error,omitempty"`
	Done   *Done   `json:"done,omitempty"`
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
