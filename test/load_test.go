package test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptrace"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// The load client of the reload tests: a few goroutines that keep requests
// in flight against one URL until stopped, and record every failure with
// its error text and every generation that answered.
//
// Every app of these tests (the testapp's serve role, the WSGI, ASGI and Go
// apps under apps/) answers "gen=G worker=W pid=P", so one client checks
// them all.

// loadMode is how the load client uses connections.
type loadMode string

const (
	// newConn opens a connection per request (DisableKeepAlives): every
	// request goes through the listening socket's accept queue, so a
	// refused or reset connection shows up as a failure.
	newConn loadMode = "newConn"
	// keepAlive is Go's default Transport: idle connections are reused,
	// and an idempotent request whose reused idle connection was closed by
	// the server before any response byte is retried on a new connection.
	// Those retries are invisible to a user and are counted apart.
	keepAlive loadMode = "keepAlive"
)

// bodyRE matches an answer of the test apps.
var bodyRE = regexp.MustCompile(`^gen=(\S*) worker=(\S*) pid=(\d+)\s*$`)

// maxFailureSamples bounds the error texts a load keeps.
const maxFailureSamples = 20

// loadStats is what a load saw.
type loadStats struct {
	Mode     loadMode
	Requests int      // completed with 200 and a well-formed body
	Failures int      // anything else
	Samples  []string // the first failures' texts
	// Retries counts requests that the keepAlive transport sent again after
	// a reused idle connection failed before any response byte; they
	// succeeded (or count in Failures too if the retry failed).
	Retries     int
	Generations map[string]int // generation -> answers
	Workers     map[string]int // "gen/worker" -> answers
	// Kinds counts failures by kind (failConnect, failDropped, failOther).
	Kinds map[string]int
}

// Failure kinds: where a request failed tells whose fault it is.
const (
	// failConnect: no connection (refused, reset in the handshake): no
	// listening socket, or a full backlog. A supervisor that owns the
	// socket must never cause one.
	failConnect = "connect"
	// failDropped: a fresh connection was accepted by a server process
	// and closed (EOF, reset) before any response byte. That is the
	// server's drain closing a connection it had accepted but not yet
	// read a request from.
	failDropped = "dropped"
	// failOther: anything else (timeout, bad status, bad body, a reset
	// mid-response).
	failOther = "other"
)

// DistinctGenerations is the number of generations that answered.
func (s loadStats) DistinctGenerations() int { return len(s.Generations) }

func (s loadStats) String() string {
	gens := make([]string, 0, len(s.Generations))
	for g := range s.Generations {
		gens = append(gens, g)
	}
	slices.SortFunc(gens, func(a, b string) int {
		x, _ := strconv.Atoi(a)
		y, _ := strconv.Atoi(b)
		return x - y
	})
	return fmt.Sprintf("mode=%s requests=%d failures=%d %v retries=%d generations=%d %v",
		s.Mode, s.Requests, s.Failures, s.Kinds, s.Retries, len(gens), gens)
}

// load is a running load client.
type load struct {
	url    string
	mode   loadMode
	dial   dialFunc // nil: the default dialer
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every success
	stats   loadStats
	retries atomic.Int64
}

// startLoad runs clients goroutines against url in the given mode until
// stop is called or maxDuration passes. The load is stopped at the end of
// the test at the latest.
func startLoad(t *testing.T, url string, mode loadMode, clients int, maxDuration time.Duration) *load {
	t.Helper()
	return startLoadVia(t, url, mode, clients, maxDuration, nil)
}

// dialFunc connects the load client: through a unix socket, or from
// another network namespace.
type dialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// startLoadVia is startLoad with connections made by dial.
func startLoadVia(t *testing.T, url string, mode loadMode, clients int, maxDuration time.Duration, dial dialFunc) *load {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), maxDuration)
	l := &load{
		url: url, mode: mode, cancel: cancel, dial: dial,
		changed: make(chan struct{}),
		stats:   loadStats{Mode: mode, Generations: map[string]int{}, Workers: map[string]int{}, Kinds: map[string]int{}},
	}
	for range clients {
		l.wg.Add(1)
		go l.client(ctx)
	}
	t.Cleanup(func() { l.stop() })
	return l
}

func newLoadClient(mode loadMode) *http.Client { return newLoadClientVia(mode, nil) }

func newLoadClientVia(mode loadMode, dial dialFunc) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if dial != nil {
		tr.DialContext = dial
	}
	switch mode {
	case newConn:
		tr.DisableKeepAlives = true
	case keepAlive:
		tr.MaxIdleConnsPerHost = 64
	}
	// Generous: a request that hangs this long is a failure, and the
	// slowest test request (/slow) takes a few seconds.
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

func (l *load) client(ctx context.Context) {
	defer l.wg.Done()
	c := newLoadClientVia(l.mode, l.dial)
	defer c.CloseIdleConnections()
	for ctx.Err() == nil {
		gen, worker, err := l.once(ctx, c)
		if ctx.Err() != nil && err != nil {
			return // the load was stopped mid-request; not the server's fault
		}
		l.record(gen, worker, err)
	}
}

// requestError is a failed request and its kind.
type requestError struct {
	kind string
	err  error
}

func (e *requestError) Error() string { return e.err.Error() }
func (e *requestError) Unwrap() error { return e.err }

// once sends one request and checks its answer. Its errors are
// *requestError.
func (l *load) once(ctx context.Context, c *http.Client) (gen, worker string, err error) {
	var conns atomic.Int32
	var lastReused, firstByte atomic.Bool
	trace := &httptrace.ClientTrace{
		GotConn: func(i httptrace.GotConnInfo) {
			conns.Add(1)
			lastReused.Store(i.Reused)
		},
		GotFirstResponseByte: func() { firstByte.Store(true) },
	}
	defer func() {
		if err == nil {
			return
		}
		kind := failOther
		switch {
		case conns.Load() == 0 || isDialError(err):
			kind = failConnect
		case !firstByte.Load() && !lastReused.Load() && isDropError(err):
			kind = failDropped
		}
		err = &requestError{kind: kind, err: err}
	}()
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), http.MethodGet, l.url, nil)
	if err != nil {
		return "", "", err
	}
	defer func() {
		if n := conns.Load(); n > 1 {
			l.retries.Add(int64(n - 1))
		}
	}()
	resp, err := c.Do(req)
	if err != nil {
		return "", "", err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return "", "", fmt.Errorf("read body (status %d): %w", resp.StatusCode, err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", "", fmt.Errorf("status %d: %.200q", resp.StatusCode, body)
	}
	m := bodyRE.FindSubmatch(body)
	if m == nil {
		return "", "", fmt.Errorf("unexpected body %.200q", body)
	}
	return string(m[1]), string(m[2]), nil
}

func (l *load) record(gen, worker string, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		l.stats.Failures++
		kind := failOther
		var re *requestError
		if errors.As(err, &re) {
			kind = re.kind
		}
		l.stats.Kinds[kind]++
		if len(l.stats.Samples) < maxFailureSamples {
			l.stats.Samples = append(l.stats.Samples, fmt.Sprintf("%s: %v", time.Now().Format("15:04:05.000"), describeErr(err)))
		}
		return
	}
	l.stats.Requests++
	l.stats.Generations[gen]++
	l.stats.Workers[gen+"/"+worker]++
	close(l.changed)
	l.changed = make(chan struct{})
}

// isDialError reports whether err happened while connecting.
func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// isDropError reports whether err is the server closing the connection:
// EOF or a reset, or net/http's unexported errServerClosedIdle, which the
// transport reports when the server closed a fresh connection before the
// request was even sent.
func isDropError(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) ||
		strings.Contains(err.Error(), "server closed idle connection")
}

// describeErr adds the syscall error, if any, to err's text.
func describeErr(err error) string {
	var op *net.OpError
	kind := ""
	var re *requestError
	if errors.As(err, &re) {
		kind = " [" + re.kind + "]"
	}
	if errors.As(err, &op) {
		return fmt.Sprintf("%v [net op %s]%s", err, op.Op, kind)
	}
	return err.Error() + kind
}

// stop ends the load, waits for its goroutines and returns what it saw.
// It may be called more than once.
func (l *load) stop() loadStats {
	l.cancel()
	l.wg.Wait()
	return l.snapshot()
}

// snapshot returns the stats so far.
func (l *load) snapshot() loadStats {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.stats
	s.Samples = slices.Clone(s.Samples)
	s.Generations = maps.Clone(l.stats.Generations)
	s.Workers = maps.Clone(l.stats.Workers)
	s.Kinds = maps.Clone(l.stats.Kinds)
	s.Retries = int(l.retries.Load())
	return s
}

// waitFor waits until ok(stats) holds, for at most timeout; it reports
// whether it did. Stats change on every successful request.
func (l *load) waitFor(timeout time.Duration, ok func(loadStats) bool) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		l.mu.Lock()
		done := ok(l.stats)
		changed := l.changed
		l.mu.Unlock()
		if done {
			return true
		}
		select {
		case <-changed:
		case <-deadline.C:
			return false
		}
	}
}

// waitGeneration waits until generation gen has answered at least once.
func (l *load) waitGeneration(gen int, timeout time.Duration) bool {
	g := strconv.Itoa(gen)
	return l.waitFor(timeout, func(s loadStats) bool { return s.Generations[g] > 0 })
}

// waitRequests waits until n more requests than now have succeeded.
func (l *load) waitRequests(n int, timeout time.Duration) bool {
	l.mu.Lock()
	want := l.stats.Requests + n
	l.mu.Unlock()
	return l.waitFor(timeout, func(s loadStats) bool { return s.Requests >= want })
}

// requireNoFailures fails t when the load saw any failure.
func requireNoFailures(t *testing.T, s loadStats) {
	t.Helper()
	t.Logf("load: %s", s)
	if s.Failures > 0 {
		t.Errorf("%d of %d requests failed (%s); first failures:", s.Failures, s.Requests+s.Failures, s.Mode)
		for _, f := range s.Samples {
			t.Errorf("  %s", f)
		}
	}
	if s.Requests == 0 {
		t.Errorf("the load completed no request at all")
	}
}

// getBody does one GET on a fresh connection and returns the answer's
// generation and worker.
func getBody(url string) (gen, worker string, err error) {
	c := newLoadClient(newConn)
	l := &load{url: url}
	return l.once(context.Background(), c)
}

// requireSomeFailures is the check of a negative control: the load, run
// without what the test guards, must have failed, or the test could not
// see a failure either. It logs what failed.
func requireSomeFailures(t *testing.T, s loadStats, without string) {
	t.Helper()
	t.Logf("without %s: %s", without, s)
	for _, f := range s.Samples[:min(3, len(s.Samples))] {
		t.Logf("  e.g. %s", f)
	}
	if s.Failures == 0 {
		t.Errorf("no request failed without %s: this test could not see what it guards", without)
	}
}
