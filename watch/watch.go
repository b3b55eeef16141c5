package watch

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/hashicorp/go-hclog"
)

// Poll settings (Options.Poll).
const (
	PollAuto     = "auto"     // poll the roots where inotify cannot be trusted
	PollOff      = "off"      // never poll; only warn
	PollInterval = "interval" // poll every root every PollEvery
)

// Modes reported by State.
const (
	ModeInotify = "inotify"
	ModePolling = "polling"
)

// Defaults for zero Options fields.
const (
	DefaultMaxWait   = 5 * time.Second
	DefaultPollEvery = 2 * time.Second
)

const (
	probePrefix  = ".rotini-probe-"
	probeTimeout = time.Second
	eventBuffer  = 1024 // fsnotify events buffered in user space
	hitBuffer    = 1024 // changed paths buffered for the debouncer
)

// Options configure a Watcher. They map one to one onto config.Watch.
type Options struct {
	// Paths are the roots, directories watched recursively, or single
	// files. Relative paths are made absolute. Each must exist.
	Paths []string
	// Include, when not empty, limits changes to paths matching one of
	// these globs (relative to their root; see the package doc).
	Include []string
	// Exclude globs are not watched at all. nil means DefaultExclude();
	// an empty non-nil slice excludes nothing.
	Exclude []string
	// Debounce is the quiet time after the last change of a burst before
	// OnChange fires. Zero fires as soon as the events stop arriving.
	Debounce time.Duration
	// MaxWait bounds how long after the first change of a burst OnChange
	// fires, even if changes keep coming. Zero means DefaultMaxWait (or
	// Debounce if that is longer); it must not be shorter than Debounce.
	MaxWait time.Duration
	// Trigger, when set, is the only file whose changes count: relative to
	// the first root, or absolute.
	Trigger string
	// Poll is PollAuto (also ""), PollOff or PollInterval.
	Poll string
	// PollEvery is the polling interval, for PollInterval and for the
	// roots that PollAuto decides to poll. Zero means DefaultPollEvery.
	PollEvery time.Duration
	// Log receives the watcher's warnings; nil discards them.
	Log hclog.Logger
	// OnChange is called once per debounced burst, from the watcher's
	// goroutine; it must not block long and must not call Close.
	OnChange func(Change)
	// SelfTest, when set, replaces the inotify self-test: it reports
	// whether inotify delivers events for root (as given in Paths, made
	// absolute). For tests.
	SelfTest func(root string) bool

	// addWatch, when set, is called before each inotify watch is added;
	// an error it returns is taken as the add's error. For tests.
	addWatch func(dir string) error
	// retryEvery replaces DefaultRetryEvery. For tests.
	retryEvery time.Duration
}

// Change is one debounced burst of changes.
type Change struct {
	Paths []string  // up to 20 of the changed paths, in the order first seen
	Count int       // distinct paths changed in the burst
	First time.Time // when the first change was seen
	Last  time.Time // when the last change was seen
}

// State is what the watcher is doing, for `rotini status` (whose wire
// form is package control's, not this).
type State struct {
	Mode string // ModeInotify, or ModePolling when any root is polled
	// Reason says why roots are polled ("/srv/app: nfs file system"), or
	// why inotify may miss changes when polling is off; empty otherwise.
	Reason     string
	Watches    int     // inotify watches held
	LastChange *Change // nil before the first OnChange
	Changes    int     // bursts reported through OnChange
}

// root is one watched path.
type root struct {
	path    string // absolute and clean, as configured; Change paths are under it
	real    string // path with symlinks resolved: what is watched or walked
	link    bool   // path itself is a symlink: re-pointing it is a change
	file    bool   // a single file: its directory is watched, only it counts
	trigger string // in trigger mode, the trigger's path relative to real
	poll    bool
	retry   bool   // polled until inotify works again (see retryInotify)
	reason  string // why polled (or why inotify is doubtful)
	snap    *snapshot
}

// abs returns the configured path of rel under r.
func (r *root) abs(rel string) string {
	if rel == "" {
		return r.path
	}
	return filepath.Join(r.path, rel)
}

// Watcher watches roots and calls Options.OnChange once per burst of
// changes. See the package doc for its guarantees.
type Watcher struct {
	o       Options
	log     hclog.Logger
	exclude []glob
	include []glob
	roots   []*root

	// Owned by New, then by the run goroutine.
	fsw         *fsnotify.Watcher
	dirs        map[string]*root   // watched directory -> its root
	linkParents map[string][]*root // directory holding a symlinked root -> those roots
	pending     []fsnotify.Event   // read during the self-test; run handles them first
	buf         []byte             // getdents buffer for addTree

	hits chan string   // changed paths, run -> debounce
	done chan struct{} // closed by Close
	wg   sync.WaitGroup

	mu      sync.Mutex
	st      State
	started bool
	closed  bool
}

// New checks o, resolves the roots and sets up inotify watches or polling
// baselines; changes are delivered only after Start. It fails only for
// unusable options (no paths, a missing path, a bad glob, bad durations);
// a system that cannot give it inotify watches makes it poll instead.
func New(o Options) (*Watcher, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	w := &Watcher{
		o:           o,
		log:         o.Log,
		dirs:        make(map[string]*root),
		linkParents: make(map[string][]*root),
		buf:         make([]byte, direntBufSize),
		hits:        make(chan string, hitBuffer),
		done:        make(chan struct{}),
	}
	if w.exclude, err = compileGlobs(o.Exclude); err != nil {
		return nil, fmt.Errorf("watch exclude: %w", err)
	}
	if w.include, err = compileGlobs(o.Include); err != nil {
		return nil, fmt.Errorf("watch include: %w", err)
	}
	for _, p := range o.Paths {
		r, err := resolveRoot(p)
		if err != nil {
			return nil, err
		}
		w.roots = append(w.roots, r)
	}
	if o.Trigger != "" {
		r, err := triggerRoot(w.roots, o.Trigger)
		if err != nil {
			return nil, err
		}
		w.roots = []*root{r}
	}

	start := time.Now()
	if o.Poll == PollInterval {
		for _, r := range w.roots {
			r.poll, r.reason = true, "poll interval configured"
		}
	} else {
		w.setupInotify()
	}
	for _, r := range w.roots {
		if r.poll && r.snap == nil {
			w.startPolling(r)
		}
	}
	w.publish()
	st := w.State()
	w.log.Info("watching", "paths", o.Paths, "mode", st.Mode, "watches", st.Watches,
		"took", time.Since(start).Round(time.Millisecond))
	return w, nil
}

func (o Options) withDefaults() (Options, error) {
	if len(o.Paths) == 0 {
		return o, errors.New("watch: no paths")
	}
	if o.Debounce < 0 {
		return o, fmt.Errorf("watch debounce %s: negative", o.Debounce)
	}
	if o.MaxWait == 0 {
		o.MaxWait = max(DefaultMaxWait, o.Debounce)
	}
	if o.MaxWait < o.Debounce {
		return o, fmt.Errorf("watch max wait %s: shorter than debounce %s", o.MaxWait, o.Debounce)
	}
	switch o.Poll {
	case "":
		o.Poll = PollAuto
	case PollAuto, PollOff, PollInterval:
	default:
		return o, fmt.Errorf("watch poll %q: not %q, %q or %q", o.Poll, PollAuto, PollOff, PollInterval)
	}
	if o.PollEvery < 0 {
		return o, fmt.Errorf("watch poll interval %s: negative", o.PollEvery)
	}
	if o.PollEvery == 0 {
		o.PollEvery = DefaultPollEvery
	}
	if o.Exclude == nil {
		o.Exclude = DefaultExclude()
	}
	if o.Log == nil {
		o.Log = hclog.NewNullLogger()
	}
	return o, nil
}

func resolveRoot(p string) (*root, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return nil, fmt.Errorf("watch path %s: %w", p, err)
	}
	fi, err := os.Lstat(abs)
	if err != nil {
		return nil, fmt.Errorf("watch path: %w", err)
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return nil, fmt.Errorf("watch path: %w", err)
	}
	st, err := os.Stat(real)
	if err != nil {
		return nil, fmt.Errorf("watch path: %w", err)
	}
	return &root{path: abs, real: real, link: fi.Mode()&os.ModeSymlink != 0, file: !st.IsDir()}, nil
}

// triggerRoot returns the root that holds the trigger file t, with its
// trigger set: the first root for a relative t, the root an absolute t
// lies under, or else t's directory as a root of its own.
func triggerRoot(roots []*root, t string) (*root, error) {
	if !filepath.IsAbs(t) {
		r := roots[0]
		rel := filepath.Clean(t)
		if rel == "." || rel == ".." || strings.HasPrefix(rel, "../") {
			return nil, fmt.Errorf("watch trigger %s: not below %s", t, r.path)
		}
		if r.file {
			return nil, fmt.Errorf("watch trigger %s: %s is a file, not a directory", t, r.path)
		}
		r.trigger = rel
		return r, nil
	}
	t = filepath.Clean(t)
	for _, r := range roots {
		if r.file {
			continue
		}
		for _, base := range []string{r.path, r.real} {
			if rel, ok := relTo(base, t); ok && rel != "" {
				r.trigger = rel
				return r, nil
			}
		}
	}
	r, err := resolveRoot(filepath.Dir(t))
	if err != nil {
		return nil, fmt.Errorf("watch trigger %s: %w", t, err)
	}
	if r.file {
		return nil, fmt.Errorf("watch trigger %s: %s is not a directory", t, r.path)
	}
	r.trigger = filepath.Base(t)
	return r, nil
}

// relTo returns p relative to base ("" for base itself) if p is base or
// below it.
func relTo(base, p string) (string, bool) {
	switch {
	case p == base:
		return "", true
	case base == "/":
		return p[1:], strings.HasPrefix(p, "/")
	case len(p) > len(base) && p[len(base)] == '/' && strings.HasPrefix(p, base):
		return p[len(base)+1:], true
	}
	return "", false
}

// wants reports whether a change of rel under r counts.
func (w *Watcher) wants(r *root, rel string) bool {
	if strings.HasPrefix(filepath.Base(rel), probePrefix) {
		return false
	}
	switch {
	case r.trigger != "":
		return rel == r.trigger
	case r.file:
		return true
	case rel == "":
		return true // the root itself (removed, re-pointed)
	case matchAny(w.exclude, rel):
		return false
	}
	return len(w.include) == 0 || matchAny(w.include, rel)
}

// wantDir reports whether the directory rel under r is watched or walked.
func (w *Watcher) wantDir(r *root, rel string) bool {
	switch {
	case rel == "":
		return true
	case r.trigger != "":
		return strings.HasPrefix(r.trigger, rel+"/")
	}
	return !matchAny(w.exclude, rel)
}

// Start begins delivering changes. Calling it again, or after Close, does
// nothing.
func (w *Watcher) Start() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.started || w.closed {
		return
	}
	w.started = true
	w.wg.Add(2)
	go w.run()
	go func() {
		defer w.wg.Done()
		debounce(w.hits, w.done, w.o.Debounce, w.o.MaxWait, w.fire)
	}()
}

// State returns a snapshot of the watcher's state; safe from any goroutine.
func (w *Watcher) State() State {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.st
	if s.LastChange != nil {
		c := *s.LastChange
		c.Paths = slices.Clone(c.Paths)
		s.LastChange = &c
	}
	return s
}

// Close stops watching and releases the inotify instance. A burst that has
// not fired yet is dropped. Close waits for a running OnChange to return,
// so OnChange must not call it. Calling Close again returns nil.
func (w *Watcher) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	close(w.done)
	w.mu.Unlock()
	w.wg.Wait()
	if w.fsw != nil {
		return w.fsw.Close()
	}
	return nil
}

// fire reports a burst; called by the debounce goroutine only.
func (w *Watcher) fire(c Change) {
	w.mu.Lock()
	w.st.Changes++
	last := c
	last.Paths = slices.Clone(c.Paths)
	w.st.LastChange = &last
	w.mu.Unlock()
	first := ""
	if len(c.Paths) > 0 {
		first = c.Paths[0]
	}
	w.log.Info("change detected", "paths", c.Count, "first", first,
		"burst", c.Last.Sub(c.First).Round(time.Millisecond))
	if w.o.OnChange != nil {
		w.o.OnChange(c)
	}
}

// hit hands one changed path to the debouncer.
func (w *Watcher) hit(p string) {
	select {
	case w.hits <- p:
	case <-w.done:
	}
}

// run owns the roots, the inotify watches and the polling snapshots.
func (w *Watcher) run() {
	defer w.wg.Done()
	for _, ev := range w.pending {
		if ev.Name == overflowEvent {
			w.handleError(fsnotify.ErrEventOverflow)
			continue
		}
		w.handle(ev)
	}
	w.pending = nil
	var ticker, retryTicker *time.Ticker
	defer func() {
		if ticker != nil {
			ticker.Stop()
		}
		if retryTicker != nil {
			retryTicker.Stop()
		}
	}()
	for {
		var events <-chan fsnotify.Event
		var errs <-chan error
		if w.fsw != nil {
			events, errs = w.fsw.Events, w.fsw.Errors
		}
		var tick <-chan time.Time
		if w.polling() {
			if ticker == nil {
				ticker = time.NewTicker(w.o.PollEvery)
			}
			tick = ticker.C
		}
		var retry <-chan time.Time
		if w.retrying() {
			if retryTicker == nil {
				every := w.o.retryEvery
				if every <= 0 {
					every = DefaultRetryEvery
				}
				retryTicker = time.NewTicker(every)
			}
			retry = retryTicker.C
		}
		select {
		case <-w.done:
			return
		case ev, ok := <-events:
			if ok {
				w.handle(ev)
			}
		case err, ok := <-errs:
			if ok {
				w.handleError(err)
			}
		case <-tick:
			w.pollOnce()
		case <-retry:
			w.retryInotify()
		}
	}
}

func (w *Watcher) polling() bool {
	for _, r := range w.roots {
		if r.poll {
			return true
		}
	}
	return false
}

// pollOnce runs a polling pass over every polled root.
func (w *Watcher) pollOnce() {
	for _, r := range w.roots {
		select {
		case <-w.done:
			return
		default:
		}
		if !r.poll {
			continue
		}
		if r.link {
			if real, err := filepath.EvalSymlinks(r.path); err == nil && real != r.real {
				w.repoint(r, real)
				continue
			}
		}
		w.scan(r, true)
	}
}

// startPolling takes r's baseline and says so.
func (w *Watcher) startPolling(r *root) {
	r.poll = true
	r.snap = nil
	w.scan(r, false)
	w.log.Info("polling for changes", "path", r.path, "files", r.snap.files,
		"every", w.o.PollEvery, "reason", r.reason)
}

// publish copies the roots' state into w.st for State.
func (w *Watcher) publish() {
	mode, reasons := ModeInotify, []string(nil)
	for _, r := range w.roots {
		if r.poll {
			mode = ModePolling
		}
		if r.reason != "" {
			reasons = append(reasons, r.path+": "+r.reason)
		}
	}
	watches := 0
	if w.fsw != nil {
		watches = len(w.dirs) + len(w.linkParents)
	}
	w.mu.Lock()
	w.st.Mode, w.st.Reason, w.st.Watches = mode, strings.Join(reasons, "; "), watches
	w.mu.Unlock()
}
