package procfs

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// ErrGone is wrapped by the error of a reader about one pid when the
// process does not exist, or stopped existing while it was read.
var ErrGone = errors.New("no such process")

// root is where proc is mounted; tests point it at a fake tree.
var root = "/proc"

// Process is what /proc/PID/stat says of a process.
type Process struct {
	PID int
	// Comm is the command name (at most 15 bytes), as the process set it:
	// it may hold spaces and parentheses.
	Comm string
	// State is R (running), S (sleeping), D (disk sleep), T (stopped),
	// t (traced), Z (zombie: exited, not yet reaped), X (dead), I (idle),
	// and so on.
	State   byte
	PPID    int
	PGRP    int
	Session int
	// StartTime is when the process started, in clock ticks after boot
	// (field 22): a later process that reuses the pid has another.
	StartTime uint64
}

// path is the file name of /proc/PID/name.
func path(pid int, name ...string) string {
	return filepath.Join(append([]string{root, strconv.Itoa(pid)}, name...)...)
}

// readFile reads /proc/PID/name; an error that says the process is gone
// wraps ErrGone.
func readFile(pid int, name string) ([]byte, error) {
	b, err := os.ReadFile(path(pid, name))
	return b, goneErr(pid, err)
}

// goneErr wraps ErrGone around err when it says that pid does not exist:
// its directory is missing (ENOENT), or the kernel found the task gone
// half-way through the read (ESRCH).
func goneErr(pid int, err error) error {
	if err != nil && (errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH)) {
		return fmt.Errorf("procfs: pid %d: %w", pid, ErrGone)
	}
	return err
}

// Stat reads /proc/PID/stat.
func Stat(pid int) (Process, error) {
	b, err := readFile(pid, "stat")
	if err != nil {
		return Process{}, err
	}
	if len(b) == 0 {
		// A task being torn down can show an empty file.
		return Process{}, fmt.Errorf("procfs: pid %d: empty stat: %w", pid, ErrGone)
	}
	p, err := parseStat(b)
	if err != nil {
		return Process{}, fmt.Errorf("procfs: %s: %w", path(pid, "stat"), err)
	}
	return p, nil
}

// parseStat parses a stat line: "PID (COMM) STATE PPID PGRP SESSION …",
// where COMM may hold anything, ')' and ' ' included; the fields after it
// are counted from its last ')'.
func parseStat(b []byte) (Process, error) {
	open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || end < open {
		return Process{}, fmt.Errorf("no (comm) in %q", b)
	}
	pid, err := strconv.Atoi(string(bytes.TrimSpace(b[:open])))
	if err != nil {
		return Process{}, fmt.Errorf("bad pid in %q", b)
	}
	// f[0] is field 3 (state), so field N is f[N-3].
	f := strings.Fields(string(b[end+1:]))
	if len(f) < 20 || len(f[0]) != 1 {
		return Process{}, fmt.Errorf("short stat line %q", b)
	}
	p := Process{PID: pid, Comm: string(b[open+1 : end]), State: f[0][0]}
	for _, v := range []struct {
		dst   *int
		field int
	}{{&p.PPID, 4}, {&p.PGRP, 5}, {&p.Session, 6}} {
		if *v.dst, err = strconv.Atoi(f[v.field-3]); err != nil {
			return Process{}, fmt.Errorf("bad field %d in %q", v.field, b)
		}
	}
	if p.StartTime, err = strconv.ParseUint(f[22-3], 10, 64); err != nil {
		return Process{}, fmt.Errorf("bad field 22 in %q", b)
	}
	return p, nil
}

// PIDs lists every process in /proc, in no particular order. A process
// listed may be gone by the time it is read.
func PIDs() ([]int, error) {
	d, err := os.Open(root)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	pids := make([]int, 0, len(names))
	for _, n := range names {
		if pid, err := strconv.Atoi(n); err == nil && pid > 0 {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// All reads the stat line of every process; those that vanish meanwhile
// are left out.
func All() ([]Process, error) {
	pids, err := PIDs()
	if err != nil {
		return nil, err
	}
	ps := make([]Process, 0, len(pids))
	for _, pid := range pids {
		if p, err := Stat(pid); err == nil {
			ps = append(ps, p)
		}
	}
	return ps, nil
}

// haveChildren reports whether the kernel provides the children files
// (CONFIG_PROC_CHILDREN), judging by this process's main thread.
var haveChildren = sync.OnceValue(func() bool {
	_, err := os.Stat("/proc/self/task/" + strconv.Itoa(os.Getpid()) + "/children")
	return err == nil
})

// Children lists the children of pid, zombies included, from the
// children file of each of its threads (a child belongs to the thread
// that forked it). The error wraps ErrGone when pid does not exist; a
// thread that exits meanwhile is skipped (its children have moved to
// another thread, or to the subreaper, which a caller sees on its next
// read). Without children files it lists every process.
func Children(pid int) ([]int, error) {
	if !haveChildren() {
		if _, err := Stat(pid); err != nil {
			return nil, err
		}
		return childrenByListing()(pid), nil
	}
	return childrenFromFiles(pid)
}

func childrenFromFiles(pid int) ([]int, error) {
	tasks, err := os.ReadDir(path(pid, "task"))
	if err != nil {
		return nil, goneErr(pid, err)
	}
	var out []int
	for _, t := range tasks {
		b, err := os.ReadFile(path(pid, "task", t.Name(), "children"))
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if c, err := strconv.Atoi(f); err == nil {
				out = append(out, c)
			}
		}
	}
	return out, nil
}

// childrenByListing lists every process once and answers from that.
func childrenByListing() func(int) []int {
	kids := map[int][]int{}
	ps, _ := All()
	for _, p := range ps {
		kids[p.PPID] = append(kids[p.PPID], p.PID)
	}
	return func(pid int) []int { return kids[pid] }
}

// Descendants lists the descendants of pid, zombies included, children
// before grandchildren. It reads only the subtree's children files, or
// lists every process once on kernels without them. A process that exits
// while the tree is read may be missed, and so may its children, which
// move to their new parent (rotini, as PID 1 or subreaper) meanwhile.
func Descendants(pid int) []int {
	kids := func(p int) []int { c, _ := childrenFromFiles(p); return c }
	if !haveChildren() {
		kids = childrenByListing()
	}
	return descendants(pid, kids)
}

func descendants(pid int, kids func(int) []int) []int {
	var out []int
	seen := map[int]bool{pid: true}
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, c := range kids(p) {
			// A pid reused while the tree is read could close a loop.
			if seen[c] {
				continue
			}
			seen[c] = true
			out = append(out, c)
			queue = append(queue, c)
		}
	}
	return out
}

// Environ returns the environment pid was started with (/proc/PID/environ:
// what execve received; a process that changes its environment later may
// or may not show it), as "NAME=value" strings in their order. Reading
// another user's process takes the right to ptrace it.
func Environ(pid int) ([]string, error) {
	b, err := readFile(pid, "environ")
	if err != nil {
		return nil, err
	}
	var env []string
	for _, kv := range bytes.Split(b, []byte{0}) {
		if len(kv) > 0 {
			env = append(env, string(kv))
		}
	}
	return env, nil
}

// FDs lists the descriptors pid has open. When pid is this process, the
// descriptor FDs itself opens to read the list is left out.
func FDs(pid int) ([]int, error) {
	d, err := os.Open(path(pid, "fd"))
	if err != nil {
		return nil, goneErr(pid, err)
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return nil, goneErr(pid, err)
	}
	own := -1
	if pid == os.Getpid() {
		own = int(d.Fd())
	}
	fds := make([]int, 0, len(names))
	for _, n := range names {
		if fd, err := strconv.Atoi(n); err == nil && fd != own {
			fds = append(fds, fd)
		}
	}
	return fds, nil
}

// Status reads /proc/PID/status into its "Name: value" pairs, each value
// with its surrounding blanks trimmed ("VmRSS" → "1234 kB").
func Status(pid int) (map[string]string, error) {
	b, err := readFile(pid, "status")
	if err != nil {
		return nil, err
	}
	st := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			st[k] = strings.TrimSpace(v)
		}
	}
	return st, nil
}

// RSS is pid's resident set size in bytes, from /proc/PID/statm.
func RSS(pid int) (int64, error) {
	b, err := readFile(pid, "statm")
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0, fmt.Errorf("procfs: %s: short line %q", path(pid, "statm"), b)
	}
	pages, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("procfs: %s: %w", path(pid, "statm"), err)
	}
	return pages * int64(os.Getpagesize()), nil
}
