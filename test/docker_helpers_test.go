package test

import (
	"context"
	"crypto/rand"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rotini-dev/rotini/procfs"
	"github.com/rotini-dev/rotini/sigstate"
)

// The Docker side of the end-to-end tests: the docker CLI as a user runs it,
// the images the tests build, and containers that clean up after
// themselves. See docker_test.go for the tests.
//
// Every name starts with dockerPrefix and carries the run's random id, and
// every container and image carries the label dockerLabel=<id>, so a run
// removes exactly what it made (at each test's end, and once more by label
// at the end of TestDocker), even when it fails.

const (
	dockerPrefix = "rotini-test-"
	dockerLabel  = "dev.rotini.test"
	// dockerCmdTimeout bounds one docker CLI call (builds included).
	dockerCmdTimeout = 5 * time.Minute
	// dockerPoll is how often the tests look at docker logs, docker
	// inspect or /proc while they wait for something to show.
	dockerPoll = 200 * time.Millisecond
)

// requireDocker returns when a Docker engine answers. Otherwise it skips t
// with the reason, or fails it under CI=true, where the engine is part of
// the machine and its absence is a broken machine, not a reason to skip.
func requireDocker(t *testing.T) {
	t.Helper()
	missing := func(format string, a ...any) {
		t.Helper()
		msg := fmt.Sprintf(format, a...)
		if os.Getenv("CI") == "true" {
			t.Fatalf("Docker tests are mandatory under CI=true: %s", msg)
		}
		t.Skipf("SKIPPING the Docker tests: %s", msg)
	}
	if _, err := exec.LookPath("docker"); err != nil {
		missing("no docker CLI on PATH")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", "version", "--format", "{{.Server.Version}}").CombinedOutput()
	if err != nil {
		missing("no Docker engine answers (`docker version`: %v: %s)", err, strings.TrimSpace(string(out)))
	}
	t.Logf("Docker engine %s", strings.TrimSpace(string(out)))
}

// dockerOut runs `docker args…` and returns its combined output.
func dockerOut(args ...string) (string, error) {
	return dockerCommandOut(nil, "docker", args...)
}

// dockerCommandOut runs name args… with env added to the test's environment and
// returns its combined output; the error names the command and its output.
func dockerCommandOut(env []string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), dockerCmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// mustDocker runs `docker args…` and fails t on error.
func mustDocker(t *testing.T, args ...string) string {
	t.Helper()
	out, err := dockerOut(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// dockerExitCode is the exit status of a finished command, -1 when it did not
// run or was killed by a signal.
func dockerExitCode(err error) int {
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	return -1
}

// dockerEnv is one run of the Docker tests: its id, the static binaries it
// built on the host and the images made from them.
type dockerEnv struct {
	id      string // random; in every name and label of the run
	root    string // the repository
	bin     string // static binaries: rotini, testapp, busybox
	version string // stamped into rotini

	rotiniImage string // docker/Dockerfile.prebuilt: /rotini alone
	testImage   string // FROM scratch: /rotini, /testapp, busybox as /bin/sh
	healthImage string // testImage plus HEALTHCHECK CMD ["/rotini", "health"]

	seq atomic.Int64 // numbers the containers
}

// newDockerEnv builds the static binaries and the base images of the run,
// and registers the removal of everything labelled with the run's id.
func newDockerEnv(t *testing.T) *dockerEnv {
	t.Helper()
	var b [4]byte
	rand.Read(b[:])
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	e := &dockerEnv{id: hex.EncodeToString(b[:]), root: root, bin: t.TempDir()}
	t.Cleanup(func() { e.sweep(t) })

	e.version = "dev"
	if out, err := dockerCommandOut(nil, "git", "-C", root, "describe", "--tags", "--always", "--dirty"); err == nil {
		e.version = strings.TrimSpace(out)
	}
	start := time.Now()
	e.goBuild(t, root, ".", "rotini", "-X main.version="+e.version+" "+sigstate.EntryFlag)
	e.goBuild(t, root, "./test/testapp", "testapp", "")
	t.Logf("built static rotini %s and testapp in %s", e.version, time.Since(start).Round(time.Millisecond))

	// rotini's own image from the binary built on the host, as
	// docker/Dockerfile.prebuilt says: context = a tree with bin/rotini.
	ctx := t.TempDir()
	dockerMkdir(t, filepath.Join(ctx, "bin"))
	dockerCopyFile(t, filepath.Join(e.bin, "rotini"), filepath.Join(ctx, "bin", "rotini"), 0o755)
	e.rotiniImage = e.name("rotini")
	e.build(t, ctx, "-f", filepath.Join(root, "docker", "Dockerfile.prebuilt"), "-t", e.rotiniImage)

	// The test image, FROM scratch, taking /rotini from rotini's image the
	// way users do. A static busybox is /bin/sh (and busybox's applets).
	busybox := dockerBusybox(t)
	ctx = t.TempDir()
	dockerCopyFile(t, filepath.Join(e.bin, "testapp"), filepath.Join(ctx, "testapp"), 0o755)
	dockerMkdir(t, filepath.Join(ctx, "bin"))
	dockerCopyFile(t, busybox, filepath.Join(ctx, "bin", "busybox"), 0o755)
	if err := os.Symlink("busybox", filepath.Join(ctx, "bin", "sh")); err != nil {
		t.Fatal(err)
	}
	dockerWriteFile(t, filepath.Join(ctx, "Dockerfile"), `ARG ROTINI_IMAGE
FROM ${ROTINI_IMAGE} AS rotini
FROM scratch
COPY --from=rotini /rotini /rotini
COPY testapp /testapp
COPY bin/ /bin/
`)
	e.testImage = e.name("app")
	e.build(t, ctx, "--build-arg", "ROTINI_IMAGE="+e.rotiniImage, "-t", e.testImage)

	ctx = t.TempDir()
	dockerWriteFile(t, filepath.Join(ctx, "Dockerfile"), "FROM "+e.testImage+`
HEALTHCHECK --interval=1s --timeout=5s --retries=1 CMD ["/rotini", "health"]
`)
	e.healthImage = e.name("health")
	e.build(t, ctx, "-t", e.healthImage)
	return e
}

// name is a unique name of this run: rotini-test-<id>-<what>.
func (e *dockerEnv) name(what string) string { return dockerPrefix + e.id + "-" + what }

// goBuild builds pkg (relative to dir) statically into e.bin/out.
func (e *dockerEnv) goBuild(t *testing.T, dir, pkg, out, ldflags string) {
	t.Helper()
	args := []string{"build", "-trimpath", "-o", filepath.Join(e.bin, out)}
	if ldflags != "" {
		args = append(args, "-ldflags", ldflags)
	}
	cmd := exec.Command("go", append(args, pkg)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
}

// build runs `docker build` on the context dir, labelling the image.
func (e *dockerEnv) build(t *testing.T, dir string, args ...string) {
	t.Helper()
	start := time.Now()
	args = append([]string{"build", "-q", "--label", dockerLabel + "=" + e.id}, args...)
	mustDocker(t, append(args, dir)...)
	t.Logf("docker build %s: %s", strings.Join(args[4:], " "), time.Since(start).Round(time.Millisecond))
}

// sweep removes every container, image and network of the run.
func (e *dockerEnv) sweep(t *testing.T) {
	filter := "label=" + dockerLabel + "=" + e.id
	if out, _ := dockerOut("ps", "-aq", "--filter", filter); strings.TrimSpace(out) != "" {
		if _, err := dockerOut(append([]string{"rm", "-f", "-v"}, strings.Fields(out)...)...); err != nil {
			t.Errorf("remove the run's containers: %v", err)
		}
	}
	if out, _ := dockerOut("images", "-q", "--filter", filter); strings.TrimSpace(out) != "" {
		if _, err := dockerOut(append([]string{"rmi", "-f"}, dockerUniq(strings.Fields(out))...)...); err != nil {
			t.Errorf("remove the run's images: %v", err)
		}
	}
	// Images that compose built and failed to remove (named after the project).
	if out, _ := dockerOut("images", "-q", "--filter", "reference="+dockerPrefix+e.id+"*"); strings.TrimSpace(out) != "" {
		if _, err := dockerOut(append([]string{"rmi", "-f"}, dockerUniq(strings.Fields(out))...)...); err != nil {
			t.Errorf("remove the run's images: %v", err)
		}
	}
	if out, _ := dockerOut("network", "ls", "-q", "--filter", "name="+dockerPrefix+e.id); strings.TrimSpace(out) != "" {
		if _, err := dockerOut(append([]string{"network", "rm"}, strings.Fields(out)...)...); err != nil {
			t.Errorf("remove the run's networks: %v", err)
		}
	}
}

func dockerUniq(ss []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range ss {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// dockerBusybox returns the static busybox of Debian's busybox-static
// (scripts/deps.sh docker installs it). It skips t when there is none, or
// fails it under CI=true.
func dockerBusybox(t *testing.T) string {
	t.Helper()
	const path = "/bin/busybox"
	f, err := elf.Open(path)
	if err == nil {
		defer f.Close()
		static := true
		for _, p := range f.Progs {
			static = static && p.Type != elf.PT_INTERP // a dynamic loader to ask for
		}
		if static {
			return path
		}
		err = fmt.Errorf("dynamically linked")
	}
	msg := fmt.Sprintf("no static %s (%v): install Debian's busybox-static (bash scripts/deps.sh docker)", path, err)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// dockerContainer is one `docker run -d` of a test, removed at the test's end;
// its logs are shown when the test failed.
type dockerContainer struct {
	t    *testing.T
	name string
	url  string // http://127.0.0.1:PORT/ when a port was published
}

// dockerRunOpts is a `docker run -d`.
type dockerRunOpts struct {
	Image   string
	Name    string   // default: a unique name from the test's name
	Publish int      // container port published on 127.0.0.1 (random host port); 0 = none
	Flags   []string // more docker run flags
	Args    []string // the command after the image
}

var dockerNameRE = regexp.MustCompile(`[^a-zA-Z0-9_.-]+`)

// run starts a container and registers its removal.
func (e *dockerEnv) run(t *testing.T, o dockerRunOpts) *dockerContainer {
	t.Helper()
	if o.Name == "" {
		o.Name = e.name(fmt.Sprintf("%s-%d", strings.ToLower(dockerNameRE.ReplaceAllString(t.Name(), "-")), e.seq.Add(1)))
	}
	c := &dockerContainer{t: t, name: o.Name}
	args := []string{"run", "-d", "--name", c.name, "--label", dockerLabel + "=" + e.id}
	if o.Publish != 0 {
		args = append(args, "-p", fmt.Sprintf("127.0.0.1::%d", o.Publish))
	}
	args = append(args, o.Flags...)
	args = append(args, o.Image)
	args = append(args, o.Args...)
	t.Cleanup(c.remove)
	mustDocker(t, args...)
	if o.Publish != 0 {
		c.url = "http://" + c.hostAddr(o.Publish) + "/"
	}
	return c
}

// hostAddr is the 127.0.0.1:PORT that container port port is published on.
func (c *dockerContainer) hostAddr(port int) string {
	c.t.Helper()
	out := mustDocker(c.t, "port", c.name, fmt.Sprintf("%d/tcp", port))
	for _, l := range strings.Fields(out) {
		if host, p, err := net.SplitHostPort(l); err == nil && host == "127.0.0.1" {
			return net.JoinHostPort(host, p)
		}
	}
	c.t.Fatalf("docker port %s %d: no 127.0.0.1 address in %q", c.name, port, out)
	return ""
}

// remove shows the logs when the test failed, then removes the container.
func (c *dockerContainer) remove() {
	if c.t.Failed() {
		if out, err := dockerOut("logs", "--tail", "150", c.name); err == nil {
			c.t.Logf("docker logs %s (last 150 lines):\n%s", c.name, out)
		}
	}
	if out, err := dockerOut("rm", "-f", "-v", c.name); err != nil && !strings.Contains(out, "No such container") {
		c.t.Errorf("remove container %s: %v", c.name, err)
	}
}

// logs is everything the container wrote so far, stdout and stderr.
func (c *dockerContainer) logs() string {
	out, _ := dockerOut("logs", c.name)
	return out
}

// inspect returns `docker inspect -f format` of the container.
func (c *dockerContainer) inspect(format string) string {
	c.t.Helper()
	return strings.TrimSpace(mustDocker(c.t, "inspect", "-f", format, c.name))
}

// running reports whether the container is still running.
func (c *dockerContainer) running() bool {
	out, err := dockerOut("inspect", "-f", "{{.State.Running}}", c.name)
	return err == nil && strings.TrimSpace(out) == "true"
}

// waitLog waits until n lines of the container's log match re and returns
// the n-th. It fails t on timeout, or when the container stopped first.
func (c *dockerContainer) waitLog(re string, n int, timeout time.Duration) string {
	c.t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.Now().Add(timeout)
	for {
		stopped := !c.running()
		seen := 0
		for _, l := range strings.Split(c.logs(), "\n") {
			if rx.MatchString(l) {
				if seen++; seen == n {
					return l
				}
			}
		}
		if stopped {
			c.t.Fatalf("waiting for log line #%d matching %q: container %s is not running (exit code %s)", n, re, c.name, c.inspect("{{.State.ExitCode}}"))
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("no log line #%d matching %q within %s (saw %d)", n, re, timeout, seen)
		}
		time.Sleep(dockerPoll)
	}
}

// countLog is the number of log lines so far that match re.
func (c *dockerContainer) countLog(re string) int {
	rx := regexp.MustCompile(re)
	n := 0
	for _, l := range strings.Split(c.logs(), "\n") {
		if rx.MatchString(l) {
			n++
		}
	}
	return n
}

// waitServing waits until GET / answers on a fresh connection and returns
// the generation that answered.
func (c *dockerContainer) waitServing(timeout time.Duration) string {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		gen, _, err := getBody(c.url)
		if err == nil {
			return gen
		}
		if !c.running() {
			c.t.Fatalf("container %s stopped before serving (exit code %s)", c.name, c.inspect("{{.State.ExitCode}}"))
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s did not serve within %s: %v", c.url, timeout, err)
		}
		time.Sleep(dockerPoll)
	}
}

// stop runs `docker stop -t grace` and returns how long it took and the
// container's exit code.
func (c *dockerContainer) stop(grace int) (time.Duration, int) {
	c.t.Helper()
	start := time.Now()
	mustDocker(c.t, "stop", "-t", strconv.Itoa(grace), c.name)
	took := time.Since(start)
	code, err := strconv.Atoi(c.inspect("{{.State.ExitCode}}"))
	if err != nil {
		c.t.Fatalf("exit code of %s: %v", c.name, err)
	}
	return took, code
}

// waitHealth waits until docker inspect reports the health status want.
func (c *dockerContainer) waitHealth(want string, timeout time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got := c.inspect("{{if .State.Health}}{{.State.Health.Status}}{{end}}")
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("health of %s is %q after %s, want %q; health log: %s", c.name, got, timeout, want,
				c.inspect("{{if .State.Health}}{{json .State.Health.Log}}{{end}}"))
		}
		time.Sleep(dockerPoll)
	}
}

// dockerHCL renders a config for the testapp in a container: listener
// "http" on 0.0.0.0:8000 and an app "web" with the given lines.
func dockerHCL(appLines ...string) string {
	var b strings.Builder
	b.WriteString("listen \"http\" {\n  address = \"tcp://0.0.0.0:8000\"\n}\n\napp \"web\" {\n  listen = [\"http\"]\n")
	for _, l := range appLines {
		b.WriteString("  " + l + "\n")
	}
	b.WriteString("}\n")
	return b.String()
}

// dockerConfigDir writes config as rotini.hcl into a fresh directory, to be
// mounted at /etc/rotini (a directory, not the file: a file bind mount
// keeps the old inode when the file is replaced by a rename).
func dockerConfigDir(t *testing.T, config string) string {
	t.Helper()
	dir := t.TempDir()
	dockerWriteConfig(t, dir, config)
	return dir
}

// dockerWriteConfig replaces dir/rotini.hcl atomically.
func dockerWriteConfig(t *testing.T, dir, config string) {
	t.Helper()
	tmp := filepath.Join(dir, ".rotini.hcl.tmp")
	dockerWriteFile(t, tmp, config)
	if err := os.Rename(tmp, filepath.Join(dir, "rotini.hcl")); err != nil {
		t.Fatal(err)
	}
}

func dockerWriteFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func dockerMkdir(t *testing.T, path string) {
	t.Helper()
	if err := os.MkdirAll(path, 0o755); err != nil {
		t.Fatal(err)
	}
}

func dockerCopyFile(t *testing.T, src, dst string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dst, mode); err != nil {
		t.Fatal(err)
	}
}

// dockerCopyTree copies the regular files, directories and symlinks under src
// into dst.
func dockerCopyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.Walk(src, func(path string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		to := filepath.Join(dst, rel)
		switch {
		case info.IsDir():
			return os.MkdirAll(to, 0o755)
		case info.Mode()&os.ModeSymlink != 0:
			target, err := os.Readlink(path)
			if err != nil {
				return err
			}
			return os.Symlink(target, to)
		default:
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			return os.WriteFile(to, b, info.Mode().Perm())
		}
	})
	if err != nil {
		t.Fatalf("copy %s: %v", src, err)
	}
}

// dockerCompose is the compose tool of the machine: the docker CLI's
// plugin (`docker compose`) when it answers, else Compose v1
// (`docker-compose`). It skips t when neither is there, or fails it under
// CI=true.
func dockerCompose(t *testing.T) []string {
	t.Helper()
	if _, err := dockerOut("compose", "version"); err == nil {
		return []string{"docker", "compose"}
	}
	if _, err := dockerCommandOut(nil, "docker-compose", "version"); err == nil {
		return []string{"docker-compose"}
	}
	msg := "neither `docker compose` nor `docker-compose` answers"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return nil
}

// nsProc is what /proc says of one process.
type nsProc struct {
	pid   int
	state byte // R, S, Z, …
	comm  string
}

// nsProcs lists the processes, seen from the host, that live in
// the PID namespace of host pid init.
func nsProcs(t *testing.T, init int) []nsProc {
	t.Helper()
	ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", init))
	if err != nil {
		t.Fatalf("pid namespace of %d: %v", init, err)
	}
	pids, err := procfs.PIDs()
	if err != nil {
		t.Fatal(err)
	}
	var out []nsProc
	for _, pid := range pids {
		if n, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", pid)); err != nil || n != ns {
			continue
		}
		p, err := procfs.Stat(pid)
		if err != nil {
			continue // gone meanwhile
		}
		out = append(out, nsProc{pid: pid, state: p.State, comm: p.Comm})
	}
	return out
}

// countZombies counts the processes in states Z (zombie) among ps.
func countZombies(ps []nsProc) int {
	n := 0
	for _, p := range ps {
		if p.state == 'Z' {
			n++
		}
	}
	return n
}
