package test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rotini-dev/rotini/control"
)

// End-to-end tests of steering: every generation has its own socket, the
// kernel sends new connections to the serving one only, and a replaced
// generation is stopped once its queue is empty. Apps as people write them
// (a Go server whose drain is http.Server.Shutdown alone, uvicorn, gunicorn)
// must then lose nothing when rotini reloads them every second under load.
// Each property has its negative control: the same run with `steer = false`
// (one socket shared by every generation, rotini's behaviour before) fails.

// steerDuration is how long the HUP-every-second runs last.
const steerDuration = 60 * time.Second

// naiveSpec runs apps/naive: two workers, ready when they said READY=1.
func naiveSpec(steer bool, extra ...string) appSpec {
	return appSpec{
		Command:     []string{naiveBin},
		Workers:     2,
		StopTimeout: "10s",
		Ready:       []string{`notify = true`, `min_uptime = "100ms"`, `timeout = "10s"`},
		Listener:    []string{fmt.Sprintf("steer = %t", steer)},
		Extra:       extra,
	}
}

// ctlPath is the rig's control socket (startRig puts it there).
func (r *rig) ctlPath() string { return filepath.Join(filepath.Dir(r.cfgPath), "ctl.sock") }

// statusJSON runs `rotini status --json` against the rig.
func (r *rig) statusJSON() *control.Status {
	r.t.Helper()
	res := rotiniCLI(r.t, nil, "status", "--json", "--control", r.ctlPath())
	if res.code != 0 {
		r.t.Fatalf("status --json: %s", res)
	}
	var st control.Status
	if err := json.Unmarshal([]byte(res.stdout), &st); err != nil {
		r.t.Fatalf("status --json: %v\n%s", err, res.stdout)
	}
	return &st
}

// hupEverySecond sends HUP every second for d while l runs, then one
// `reload --wait` so that the last reload has finished, and returns how
// many reloads rotini completed.
func (r *rig) hupEverySecond(l *load, d time.Duration) int {
	r.t.Helper()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	end := time.After(d)
loop:
	for {
		select {
		case <-tick.C:
			r.signal(syscall.SIGHUP)
		case <-end:
			break loop
		}
		if !r.running() {
			r.t.Fatalf("rotini exited during the reloads")
		}
	}
	if res := rotiniCLI(r.t, nil, "reload", "--wait", "--control", r.ctlPath()); res.code != 0 {
		r.t.Fatalf("the last reload: %s", res)
	}
	return r.countLog(`rotini\.web: reload done`)
}

// steerRun reloads the app of config every second for steerDuration under
// a load of a new connection per request, and returns what the load saw.
func steerRun(t *testing.T, port int, config string, mode loadMode) loadStats {
	t.Helper()
	r := startRig(t, port, config)
	r.waitLog(`generation ready: generation=1\b`, 1, time.Minute)
	l := startLoad(t, r.url, mode, loadClients, 10*time.Minute)
	if !l.waitGeneration(1, startTimeout) {
		t.Fatalf("generation 1 never answered: %s", l.snapshot())
	}
	done := r.hupEverySecond(l, steerDuration)
	s := l.stop()
	t.Logf("%d reloads done in %s", done, steerDuration)
	if s.DistinctGenerations() < 10 {
		t.Errorf("the load met %d generations, want at least 10", s.DistinctGenerations())
	}
	r.stop()
	return s
}

// TestSteerNaiveGoApp: the naive Go app loses nothing when steered, and
// loses requests on a shared socket (the negative control).
func TestSteerNaiveGoApp(t *testing.T) {
	for _, steer := range []bool{true, false} {
		t.Run(fmt.Sprintf("steer=%t", steer), func(t *testing.T) {
			t.Parallel()
			port := freeLoopbackPort(t)
			s := steerRun(t, port, rigConfig(port, naiveSpec(steer)), newConn)
			if steer {
				requireNoFailures(t, s)
				return
			}
			requireSomeFailures(t, s, "steering (a shared socket)")
		})
	}
}

// TestSteerRealApps: uvicorn (whose drain closes connections it accepted but
// had not read) and gunicorn's sync and gthread workers, reloaded every
// second under load: nothing fails.
func TestSteerRealApps(t *testing.T) {
	uvicorn := func(t *testing.T) appSpec {
		requireDebianPackage(t, "python3-uvicorn", "/usr/lib/python3/dist-packages/uvicorn/__init__.py")
		return appSpec{
			Command: []string{
				"/usr/bin/python3", "-m", "uvicorn", "--fd", "${fd.http}",
				"--app-dir", copyApp(t, "asgi"), "--no-access-log", "app:app",
			},
			Workers:     2,
			StopTimeout: "25s",
			Extra:       []string{`env = { PYTHONDONTWRITEBYTECODE = "1" }`},
			Ready:       []string{`min_uptime = "1500ms"`, `timeout = "60s"`},
		}
	}
	gunicorn := func(class string) func(t *testing.T) appSpec {
		return func(t *testing.T) appSpec {
			requireDebianPackage(t, "gunicorn", "/usr/bin/gunicorn")
			s := gunicornSpec(copyApp(t, "wsgi"))
			s.Command = append(s.Command[:1:1], append([]string{"--worker-class", class, "--threads", "4"}, s.Command[1:]...)...)
			return s
		}
	}
	for _, tc := range []struct {
		name string
		spec func(t *testing.T) appSpec
	}{
		{"uvicorn", uvicorn},
		{"gunicorn-sync", gunicorn("sync")},
		{"gunicorn-gthread", gunicorn("gthread")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			port := freeLoopbackPort(t)
			requireNoFailures(t, steerRun(t, port, rigConfig(port, tc.spec(t)), newConn))
		})
	}
}

// TestSteerBrokenRelease: a release that accepts connections but is not
// ready (it answers 500, so its readiness probe fails) never answers a
// client: its socket receives nothing until the rollback. On a shared
// socket (the negative control) clients get its errors.
func TestSteerBrokenRelease(t *testing.T) {
	for _, steer := range []bool{true, false} {
		t.Run(fmt.Sprintf("steer=%t", steer), func(t *testing.T) {
			t.Parallel()
			port := freeLoopbackPort(t)
			spec := func(status int) appSpec {
				s := naiveSpec(steer, fmt.Sprintf(`env = { NAIVE_STATUS = "%d" }`, status))
				s.Ready = []string{`http = "/"`, `min_uptime = "100ms"`, `timeout = "3s"`}
				return s
			}
			r := startRig(t, port, rigConfig(port, spec(200)))
			r.waitLog(`generation ready: generation=1\b`, 1, time.Minute)
			l := startLoad(t, r.url, newConn, loadClients, 5*time.Minute)
			if !l.waitGeneration(1, startTimeout) {
				t.Fatalf("generation 1 never answered: %s", l.snapshot())
			}
			r.writeConfig(rigConfig(port, spec(500)))
			line, ok := r.hupAndWait(1)
			if ok || !strings.Contains(line, "not ready") {
				t.Fatalf("the broken release: %q, want a rollback for not being ready", line)
			}
			r.waitLog(`generation drained: generation=2\b`, 1, reloadTimeout)
			if !l.waitRequests(100, startTimeout) {
				t.Fatalf("no answers after the rollback: %s", l.snapshot())
			}
			s := l.stop()
			if steer {
				requireNoFailures(t, s)
			} else if s.Failures == 0 {
				t.Errorf("no client met the broken release on a shared socket: this test could not see what steering fixes (%s)", s)
			} else {
				t.Logf("shared socket: %s; e.g. %s", s, s.Samples[0])
			}
			r.stop()
		})
	}
}

// TestSteerUnixListener: a unix listener's new generation is bound at a
// temporary path and renamed over the configured one when it serves; the
// naive app loses nothing across rotations.
func TestSteerUnixListener(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	sock := filepath.Join(dir, "app.sock")
	cfg := fmt.Sprintf(`listen "http" {
  address = "unix://%s"
}
app "web" {
  command      = [%q]
  workers      = 2
  listen       = ["http"]
  stop_timeout = "10s"
  ready {
    notify     = true
    min_uptime = "100ms"
  }
}
`, sock, naiveBin)
	r := startRig(t, 0, cfg)
	r.waitLog(`generation ready: generation=1\b`, 1, time.Minute)
	dial := func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}
	l := startLoadVia(t, "http://unix/", newConn, loadClients, 5*time.Minute, dial)
	if !l.waitGeneration(1, startTimeout) {
		t.Fatalf("generation 1 never answered: %s", l.snapshot())
	}
	const n = 20
	for i := 1; i <= n; i++ {
		if line, ok := r.hupAndWait(i); !ok {
			t.Fatalf("reload %d: %s", i, line)
		}
		if !l.waitGeneration(i+1, reloadTimeout) {
			t.Fatalf("generation %d never answered: %s", i+1, l.snapshot())
		}
	}
	s := l.stop()
	requireNoFailures(t, s)
	r.stop()
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".app.sock.") {
			t.Errorf("a temporary socket path was left: %s", e.Name())
		}
	}
}

// procNetTCP are the TCP socket tables of the namespace of the thread
// that reads them. Not /proc/net, which is the main thread's: a test that
// dials from another namespace (testNetns.dial) locks the thread it moves
// there for good, and when that thread is the main one, /proc/net shows
// that namespace to the whole test binary from then on.
var procNetTCP = []string{"/proc/thread-self/net/tcp", "/proc/thread-self/net/tcp6"}

// listenSockets counts the listening TCP sockets of this network namespace
// on port: the members of the listener's reuseport group.
func listenSockets(t *testing.T, port int) int {
	t.Helper()
	n := 0
	for _, f := range procNetTCP {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		want := fmt.Sprintf(":%04X ", port)
		for _, line := range strings.Split(string(b), "\n")[1:] {
			fs := strings.Fields(line)
			if len(fs) > 3 && fs[3] == "0A" && strings.HasSuffix(fs[1]+" ", want) {
				n++
			}
		}
	}
	return n
}

// TestSteerThousandRotations: 1,000 rotations back to back under load lose
// nothing. Every 100 rotations, once the app has settled: every socket
// that listens on the port is one rotini knows, and after one more reload
// (which lets sockets retired during the storm leave, see package sockets)
// the group holds exactly the serving generation's socket and rotini's
// descriptors are where they were.
func TestSteerThousandRotations(t *testing.T) {
	t.Parallel()
	const n = 1000
	port := freeLoopbackPort(t)
	spec := naiveSpec(true)
	spec.Workers = 1
	spec.Ready = []string{`notify = true`, `min_uptime = "1ms"`, `timeout = "10s"`}
	r := startRig(t, port, rigConfig(port, spec))
	r.waitLog(`generation ready: generation=1\b`, 1, time.Minute)
	l := startLoad(t, r.url, newConn, 2, 20*time.Minute) // light: the rotations are the point
	if !l.waitGeneration(1, startTimeout) {
		t.Fatalf("generation 1 never answered: %s", l.snapshot())
	}
	pid := r.p.target(t)
	settle := func() *control.Status {
		var st *control.Status
		eventually(t, time.Minute, "one generation left", func() (bool, string) {
			st = r.statusJSON()
			return len(st.Apps[0].Generations) == 1, fmt.Sprintf("%d generations", len(st.Apps[0].Generations))
		})
		return st
	}
	reloads := 0
	fds0 := -1
	for i := 1; i <= n; i++ {
		reloads++
		if line, ok := r.hupAndWait(reloads); !ok {
			t.Fatalf("reload %d: %s", i, line)
		}
		if i%100 != 0 {
			continue
		}
		settle()
		stormSockets := 0
		eventually(t, time.Minute, "the sockets listening are rotini's", func() (bool, string) {
			stormSockets = len(r.statusJSON().Listeners[0].Sockets)
			got := listenSockets(t, port)
			return got == stormSockets, fmt.Sprintf("rotation %d: %d sockets listen on the port, rotini knows %d", i, got, stormSockets)
		})
		reloads++
		if line, ok := r.hupAndWait(reloads); !ok {
			t.Fatalf("reload after rotation %d: %s", i, line)
		}
		settle()
		// The old generation's socket leaves as it drains: poll, since
		// status reads the sockets and the generations one after the other.
		eventually(t, time.Minute, "one socket for the one generation", func() (bool, string) {
			socks, listening := len(r.statusJSON().Listeners[0].Sockets), listenSockets(t, port)
			return socks == 1 && listening == 1, fmt.Sprintf("rotation %d: %d sockets in rotini's status, %d listening", i, socks, listening)
		})
		fds := countFDs(pid)
		if fds0 < 0 {
			fds0 = fds
		} else if fds > fds0 {
			t.Errorf("rotation %d: rotini has %d descriptors, %d after 100 rotations", i, fds, fds0)
		}
		t.Logf("rotation %d: %d sockets after the storm, 1 after one more reload; %d descriptors", i, stormSockets, fds)
	}
	s := l.stop()
	requireNoFailures(t, s)
	r.stop()
}

// TestSteerStatus: status shows the listener's sockets, their generations,
// which one receives new connections, and their queues.
func TestSteerStatus(t *testing.T) {
	t.Parallel()
	port := freeLoopbackPort(t)
	r := startRig(t, port, rigConfig(port, naiveSpec(true)))
	r.waitLog(`generation ready: generation=1\b`, 1, time.Minute)
	r.hupAndWait(1)
	st := r.statusJSON()
	ls := st.Listeners[0]
	if ls.Mode != "steered" {
		t.Errorf("mode %q, want steered", ls.Mode)
	}
	serving := 0
	for _, s := range ls.Sockets {
		if s.Serving {
			serving++
			if s.Generation != 2 {
				t.Errorf("the serving socket is generation %d's, want 2", s.Generation)
			}
		}
	}
	if serving != 1 {
		t.Errorf("%d serving sockets: %+v", serving, ls.Sockets)
	}
	res := rotiniCLI(t, nil, "status", "--control", r.ctlPath())
	if !strings.Contains(res.stdout, "steered") || !regexpMatch(`generation 2 .*serving|serving.*generation 2`, res.stdout) {
		t.Errorf("status does not show the steering:\n%s", res.stdout)
	}
	r.stop()

	port = freeLoopbackPort(t)
	r = startRig(t, port, rigConfig(port, naiveSpec(false)))
	r.waitLog(`generation ready: generation=1\b`, 1, time.Minute)
	if ls := r.statusJSON().Listeners[0]; ls.Mode != "shared" || !strings.Contains(ls.Note, "steer = false") {
		t.Errorf("a listener with steer = false: %+v", ls)
	}
	r.stop()
}

// TestSteerRefusesStranger: a socket that something else listens on with
// SO_REUSEPORT (workers left by a killed rotini) is not joined: rotini
// refuses to start, as it would without SO_REUSEPORT.
func TestSteerRefusesStranger(t *testing.T) {
	t.Parallel()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, 0xf /* SO_REUSEPORT */, 1); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 16); err != nil {
		t.Fatal(err)
	}
	sa, _ := syscall.Getsockname(fd)
	port := sa.(*syscall.SockaddrInet4).Port
	r := startRig(t, port, rigConfig(port, naiveSpec(true)))
	if code := r.waitExit(startTimeout); code != 70 {
		t.Fatalf("rotini exited %d, want 70", code)
	}
	if !strings.Contains(r.p.stderrText(), "address already in use") || !strings.Contains(r.p.stderrText(), strconv.Itoa(port)) {
		t.Errorf("no clear message:\n%s", r.p.stderrText())
	}
}

func regexpMatch(re, s string) bool { return regexp.MustCompile(re).MatchString(s) }

// listenInodes maps the inode of every socket listening on port to true.
func listenInodes(t *testing.T, port int) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, f := range procNetTCP {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		want := fmt.Sprintf(":%04X", port)
		for _, line := range strings.Split(string(b), "\n")[1:] {
			fs := strings.Fields(line)
			if len(fs) > 9 && fs[3] == "0A" && strings.HasSuffix(fs[1], want) {
				out[fs[9]] = true
			}
		}
	}
	return out
}

// socketInodes lists the inodes of pid's socket descriptors.
func socketInodes(pid int) []string {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, _ := os.ReadDir(dir)
	var out []string
	for _, e := range ents {
		if l, err := os.Readlink(filepath.Join(dir, e.Name())); err == nil && strings.HasPrefix(l, "socket:[") {
			out = append(out, strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]"))
		}
	}
	return out
}

// TestSteerWorkerHoldsOwnSocket: while two generations run, each worker
// holds exactly one of the sockets listening on the port — its own
// generation's, the same for every worker of the generation and different
// from the other generation's. A copy of another generation's socket in a
// worker would keep a replaced socket in the group.
func TestSteerWorkerHoldsOwnSocket(t *testing.T) {
	t.Parallel()
	port := freeLoopbackPort(t)
	spec := naiveSpec(true)
	spec.StopTimeout = "30s"
	spec.Listener = append(spec.Listener, `switch_grace = "20s"`) // keep generation 1 alive, handed off
	r := startRig(t, port, rigConfig(port, spec))
	r.waitLog(`generation ready: generation=1\b`, 1, time.Minute)
	if line, ok := r.hupAndWait(1); !ok {
		t.Fatal(line)
	}
	st := r.statusJSON()
	if n := len(st.Apps[0].Generations); n != 2 {
		t.Fatalf("%d generations alive, want 2 (the old one handed off)", n)
	}
	listening := listenInodes(t, port)
	byGen := map[int]string{}
	for _, g := range st.Apps[0].Generations {
		for _, w := range g.Workers {
			var mine []string
			for _, ino := range socketInodes(w.Pid) {
				if listening[ino] {
					mine = append(mine, ino)
				}
			}
			if len(mine) != 1 {
				t.Errorf("generation %d worker %d (pid %d) holds %d sockets listening on the port: %v", g.Number, w.Index, w.Pid, len(mine), mine)
				continue
			}
			if prev, ok := byGen[g.Number]; ok && prev != mine[0] {
				t.Errorf("generation %d: workers hold different sockets %s and %s", g.Number, prev, mine[0])
			}
			byGen[g.Number] = mine[0]
		}
	}
	if byGen[1] == "" || byGen[1] == byGen[2] {
		t.Errorf("generations 1 and 2 share socket %q: not steered", byGen[1])
	}
	r.stop()
}

// TestSteerFaultsAtSwitch: events that meet a switch. Every old worker
// dies (SIGKILL) while its generation is handed off, once its queue is
// empty and before its stop signal: the generation is drained once, its
// socket leaves, and the load loses nothing, since no connection was
// steered to it any more. (A worker killed with connections in its queue
// or in its hands loses them; only tcp_migrate_req moves a queue.) TERM at
// the switch: slow requests in flight in the old generation complete, and
// rotini exits 0.
func TestSteerFaultsAtSwitch(t *testing.T) {
	t.Run("old workers killed in the handoff", func(t *testing.T) {
		t.Parallel()
		port := freeLoopbackPort(t)
		spec := naiveSpec(true)
		spec.Listener = append(spec.Listener, `switch_grace = "3s"`)
		r := startRig(t, port, rigConfig(port, spec))
		r.waitLog(`generation ready: generation=1\b`, 1, time.Minute)
		l := startLoad(t, r.url, newConn, loadClients, 5*time.Minute)
		if !l.waitGeneration(1, startTimeout) {
			t.Fatalf("generation 1 never answered: %s", l.snapshot())
		}
		const n = 5
		for i := 1; i <= n; i++ {
			if line, ok := r.hupAndWait(i); !ok {
				t.Fatalf("reload %d: %s", i, line)
			}
			if !l.waitGeneration(i+1, reloadTimeout) {
				t.Fatalf("generation %d never answered: %s", i+1, l.snapshot())
			}
			// Once nothing waits in its queue, the old generation only
			// finishes what it has; the app answers in microseconds, so a
			// queue seen empty three times over 100 ms means idle workers.
			empty := 0
			eventually(t, reloadTimeout, "the old socket's queue empties", func() (bool, string) {
				q := -1
				for _, so := range r.statusJSON().Listeners[0].Sockets {
					if so.Generation == i {
						q = so.Queued
					}
				}
				if q == 0 {
					empty++
				} else {
					empty = 0
				}
				time.Sleep(50 * time.Millisecond)
				return empty >= 3, fmt.Sprintf("queue %d", q)
			})
			for _, pid := range r.workerPids(i) {
				syscall.Kill(pid, syscall.SIGKILL)
			}
			r.waitLog(fmt.Sprintf(`generation drained: generation=%d\b`, i), 1, reloadTimeout)
		}
		if !l.waitRequests(100, startTimeout) {
			t.Fatalf("no answers after the last reload: %s", l.snapshot())
		}
		s := l.stop()
		requireNoFailures(t, s)
		for i := 1; i <= n; i++ {
			if c := r.countLog(fmt.Sprintf(`generation drained: generation=%d\b`, i)); c != 1 {
				t.Errorf("generation %d drained %d times", i, c)
			}
		}
		if got := len(r.statusJSON().Listeners[0].Sockets); got != 1 {
			t.Errorf("%d sockets left, want the serving one", got)
		}
		r.stop()
	})
	t.Run("TERM at the switch", func(t *testing.T) {
		t.Parallel()
		port := freeLoopbackPort(t)
		r := startRig(t, port, rigConfig(port, appSpec{Command: testappServe("--notify"), StopTimeout: "20s"}))
		r.waitLog(`generation ready: generation=1\b`, 1, startTimeout)
		const slow = 4
		errs := make(chan error, slow)
		var written sync.WaitGroup
		written.Add(slow)
		for range slow {
			go func() {
				var once sync.Once
				trace := &httptrace.ClientTrace{WroteRequest: func(httptrace.WroteRequestInfo) { once.Do(written.Done) }}
				l := &load{url: r.url + "slow?ms=2000"}
				gen, _, err := l.once(httptrace.WithClientTrace(context.Background(), trace), newLoadClient(newConn))
				once.Do(written.Done)
				if err == nil && gen != "1" {
					err = fmt.Errorf("answered by generation %s, want 1", gen)
				}
				errs <- err
			}()
		}
		written.Wait() // the requests are in generation 1
		r.signal(syscall.SIGHUP)
		r.waitLog(`generation ready: generation=2\b`, 1, reloadTimeout)
		r.signal(syscall.SIGTERM)
		for range slow {
			if err := <-errs; err != nil {
				t.Errorf("a slow request in flight at the switch: %v", describeErr(err))
			}
		}
		if code := r.waitExit(stopTimeout); code != 0 {
			t.Errorf("rotini exited %d, want 0", code)
		}
	})
}
