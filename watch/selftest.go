package watch

import (
	"bufio"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
	"golang.org/x/sys/unix"
)

// remoteTypes are the file systems (statfs f_type, include/uapi/linux/magic.h
// and the file systems' sources) on which inotify only sees changes made
// through this kernel, not those made by the server, the host or another
// client. virtiofs, Docker Desktop's grpcfuse and osxfs, sshfs, gcsfuse,
// mergerfs, … all report FUSE_SUPER_MAGIC; WSL's drvfs is 9p.
var remoteTypes = map[uint32]string{
	unix.V9FS_MAGIC:        "9p",
	unix.FUSE_SUPER_MAGIC:  "fuse",
	unix.NFS_SUPER_MAGIC:   "nfs",
	unix.CIFS_SUPER_MAGIC:  "cifs",
	unix.SMB2_SUPER_MAGIC:  "smb2",
	unix.SMB_SUPER_MAGIC:   "smb",
	unix.CEPH_SUPER_MAGIC:  "ceph",
	unix.AFS_SUPER_MAGIC:   "afs",
	unix.AFS_FS_MAGIC:      "kafs",
	unix.CODA_SUPER_MAGIC:  "coda",
	unix.OCFS2_SUPER_MAGIC: "ocfs2",
	unix.NCP_SUPER_MAGIC:   "ncpfs",
	0x01161970:             "gfs2",
	0x0bd00bd0:             "lustre",
	0x786f4256:             "vboxsf",
	0x7c7c6673:             "prl_fs",
	0x20030528:             "orangefs",
	0x19830326:             "beegfs",
	0x47504653:             "gpfs",
	0xaad7aaea:             "panfs",
}

// remoteFS reports whether dir is on a file system where inotify misses
// changes made elsewhere, and names it ("virtiofs", "fuse.sshfs", "nfs4").
func remoteFS(dir string) (name string, remote bool) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return "", false
	}
	name, remote = remoteTypes[uint32(st.Type)]
	if !remote {
		return "", false
	}
	if t := mountType(dir); t != "" {
		name = t
	}
	return name, true
}

// mountType returns the type /proc/self/mountinfo gives for the mount
// holding dir, or "" if it cannot tell.
func mountType(dir string) string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return ""
	}
	defer f.Close()
	best, typ := -1, ""
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		// 36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		fields, ptype := strings.Fields(pre), strings.Fields(post)
		if !ok || len(fields) < 5 || len(ptype) < 1 {
			continue
		}
		mp := unescapeMount(fields[4])
		if _, under := relTo(mp, dir); under && len(mp) > best {
			best, typ = len(mp), ptype[0]
		}
	}
	return typ
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// selfTest checks that inotify delivers events for every watched root;
// with Poll auto, the roots where it does not are polled instead. Called
// by New, before Start: the events it reads that are not its probes are
// kept for run.
func (w *Watcher) selfTest() {
	var test []*root
	for _, r := range w.roots {
		if !r.poll {
			test = append(test, r)
		}
	}
	if len(test) == 0 {
		return
	}
	var failed []*root
	if w.o.SelfTest != nil {
		for _, r := range test {
			if !w.o.SelfTest(r.path) {
				failed = append(failed, r)
			}
		}
	} else {
		failed = w.probe(test)
	}
	for _, r := range failed {
		if w.o.Poll == PollOff {
			r.reason = "inotify self-test failed (poll is off)"
			w.log.Warn("inotify self-test failed: no event for a probe file within 1s; poll is off, so changes may be missed",
				"path", r.path)
			continue
		}
		r.reason = "inotify self-test failed: no event for a probe file within 1s"
		w.log.Warn("inotify self-test failed: no event for a probe file within 1s; polling",
			"path", r.path, "every", w.o.PollEvery)
		if r.file {
			delete(w.dirs, filepath.Dir(r.real))
			_ = w.fsw.Remove(filepath.Dir(r.real))
		} else {
			w.forget(r.real)
		}
		r.poll = true
	}
}

// probe creates a file in each root and returns the roots for which no
// inotify event arrived within probeTimeout. A root that cannot be written
// is not tested (it passes).
func (w *Watcher) probe(roots []*root) []*root {
	waiting := make(map[string]*root)
	for _, r := range roots {
		dir := r.real
		if r.file {
			dir = filepath.Dir(r.real)
		}
		p := filepath.Join(dir, fmt.Sprintf("%s%016x", probePrefix, rand.Uint64()))
		f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			w.log.Debug("cannot write a probe file; skipping the inotify self-test", "path", r.path, "error", err)
			continue
		}
		f.Close()
		defer os.Remove(p)
		waiting[p] = r
	}
	timeout := time.NewTimer(probeTimeout)
	defer timeout.Stop()
	for len(waiting) > 0 {
		select {
		case ev, ok := <-w.fsw.Events:
			if !ok {
				return nil
			}
			if _, probe := waiting[ev.Name]; probe {
				delete(waiting, ev.Name)
			} else if !strings.HasPrefix(filepath.Base(ev.Name), probePrefix) {
				w.pending = append(w.pending, ev)
			}
		case err, ok := <-w.fsw.Errors:
			if ok {
				w.handleErrorLater(err)
			}
		case <-timeout.C:
			failed := make([]*root, 0, len(waiting))
			for _, r := range waiting {
				failed = append(failed, r)
			}
			return failed
		}
	}
	return nil
}

// handleErrorLater keeps an error read during the self-test for run: an
// overflow becomes a rescan there.
func (w *Watcher) handleErrorLater(err error) {
	if errors.Is(err, fsnotify.ErrEventOverflow) {
		w.pending = append(w.pending, fsnotify.Event{Name: overflowEvent})
		return
	}
	w.log.Warn("inotify error", "error", err)
}

// overflowEvent marks an overflow in w.pending.
const overflowEvent = "\x00overflow"
