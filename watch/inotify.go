package watch

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"unsafe"

	"github.com/fsnotify/fsnotify"
	"golang.org/x/sys/unix"
)

// errLimit wraps an inotify resource limit error: ENOSPC from
// inotify_add_watch (fs.inotify.max_user_watches) or EMFILE from
// inotify_init (fs.inotify.max_user_instances).
type errLimit struct{ err error }

func (e errLimit) Error() string { return e.err.Error() }
func (e errLimit) Unwrap() error { return e.err }

func (e errLimit) sysctl() string {
	if errors.Is(e.err, unix.EMFILE) {
		return "fs.inotify.max_user_instances"
	}
	return "fs.inotify.max_user_watches"
}

// setupInotify creates the inotify instance, watches every root that
// should not be polled, and runs the self-test. Called by New.
func (w *Watcher) setupInotify() {
	fsw, err := fsnotify.NewBufferedWatcher(eventBuffer)
	if err != nil {
		if errors.Is(err, unix.EMFILE) || errors.Is(err, unix.ENFILE) {
			err = errLimit{err}
		}
		w.inotifyFailed(err)
		return
	}
	w.fsw = fsw
	for _, r := range w.roots {
		if fs, remote := remoteFS(r.real); remote {
			r.reason = fs + " file system: inotify does not see changes made on other machines"
			if w.o.Poll == PollAuto {
				r.poll = true
				w.log.Warn("inotify cannot see remote changes on this file system; polling",
					"path", r.path, "fs", fs, "every", w.o.PollEvery)
				continue
			}
			w.log.Warn("inotify cannot see remote changes on this file system and poll is off; changes made elsewhere will be missed",
				"path", r.path, "fs", fs)
		}
		if err := w.watchRoot(r); err != nil {
			w.inotifyFailed(err)
			return
		}
	}
	w.selfTest()
}

// watchRoot adds the watches of one root.
func (w *Watcher) watchRoot(r *root) error {
	if r.file {
		dir := filepath.Dir(r.real)
		if err := w.add(dir); err != nil {
			return err
		}
		w.dirs[dir] = r
	} else if err := w.addTree(r, r.real, "", false); err != nil {
		return err
	}
	if r.link {
		parent := filepath.Dir(r.path)
		if _, ok := w.linkParents[parent]; !ok {
			if err := w.add(parent); err != nil {
				return err
			}
		}
		w.linkParents[parent] = append(w.linkParents[parent], r)
	}
	return nil
}

// add adds one inotify watch. The only error it returns is an errLimit;
// others (the directory is gone, or unreadable) are logged and skipped.
func (w *Watcher) add(dir string) error {
	var err error
	if w.o.addWatch != nil {
		err = w.o.addWatch(dir)
	}
	if err == nil {
		err = w.fsw.Add(dir)
	}
	if errors.Is(err, unix.ENOSPC) {
		return errLimit{err}
	}
	if err != nil {
		w.log.Debug("cannot watch directory", "path", dir, "error", err)
		return errSkip
	}
	return nil
}

var errSkip = errors.New("skipped")

// addTree watches the directory dir (relative path rel under r) and every
// wanted directory below it. Each directory is listed after its watch is
// added, so nothing created in between is missed; with report set, every
// entry found counts as changed (the tree is new).
func (w *Watcher) addTree(r *root, dir, rel string, report bool) error {
	type item struct{ dir, rel string }
	stack := []item{{dir, rel}}
	for len(stack) > 0 {
		it := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if err := w.add(it.dir); err != nil {
			if errors.Is(err, errSkip) {
				continue
			}
			return err
		}
		w.dirs[it.dir] = r
		fd, err := unix.Open(it.dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			continue
		}
		_ = dirents(fd, w.buf, func(name []byte, typ uint8, _ uint64) {
			sname := unsafe.String(unsafe.SliceData(name), len(name)) // valid during this call
			if typ == unix.DT_UNKNOWN {
				var st unix.Stat_t
				if unix.Fstatat(fd, sname, &st, unix.AT_SYMLINK_NOFOLLOW) != nil {
					return
				}
				typ = direntType(st.Mode)
			}
			if typ != unix.DT_DIR && !report {
				return
			}
			crel := string(name)
			if it.rel != "" {
				crel = it.rel + "/" + crel
			}
			if typ == unix.DT_DIR && w.wantDir(r, crel) {
				child := it.dir + "/" + string(name)
				if it.dir == "/" {
					child = "/" + string(name)
				}
				stack = append(stack, item{child, crel})
			}
			if report && w.wants(r, crel) {
				w.hit(r.abs(crel))
			}
		})
		unix.Close(fd)
	}
	return nil
}

// forget drops the watches of dir and of every watched directory below it.
func (w *Watcher) forget(dir string) {
	for d := range w.dirs {
		if d == dir || strings.HasPrefix(d, dir+"/") {
			delete(w.dirs, d)
			if w.fsw != nil {
				_ = w.fsw.Remove(d) // fails when the kernel already dropped it
			}
		}
	}
}

// handle processes one inotify event.
func (w *Watcher) handle(ev fsnotify.Event) {
	name := ev.Name
	dir := filepath.Dir(name)
	for _, r := range w.linkParents[dir] {
		if name == r.path && !r.poll {
			w.relink(r)
		}
	}
	r, ok := w.dirs[dir]
	if !ok {
		// An event about a watched directory itself, sent when it is
		// removed or moved and its parent is not watched: a root.
		if r, ok := w.dirs[name]; ok && name == r.real && (ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename)) {
			w.rootGone(r)
		}
		return
	}
	if r.poll {
		return
	}
	if r.file {
		if name == r.real {
			w.hit(r.path)
		}
		return
	}
	rel, _ := relTo(r.real, name)
	if ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
		// A directory renamed away keeps its kernel watches; drop them
		// (and its subdirectories') before its new name is added, or
		// fsnotify would report the new name's events under the old one.
		if _, ok := w.dirs[name]; ok {
			w.forget(name)
			w.publish()
		}
	}
	if ev.Has(fsnotify.Create) {
		if fi, err := os.Lstat(name); err == nil && fi.IsDir() && w.wantDir(r, rel) {
			if err := w.addTree(r, name, rel, true); err != nil {
				w.inotifyFailed(err)
			}
			w.publish()
		}
	}
	if w.wants(r, rel) {
		w.hit(r.abs(rel))
	}
}

func (w *Watcher) handleError(err error) {
	if errors.Is(err, fsnotify.ErrEventOverflow) {
		// Events were lost: count it as a change of every root and make
		// sure directories created meanwhile are watched.
		w.log.Warn("inotify event queue overflowed; rescanning (raise fs.inotify.max_queued_events to avoid it)")
		for _, r := range w.roots {
			if r.poll {
				continue
			}
			if r.trigger == "" {
				w.hit(r.path)
			} else {
				w.hit(r.abs(r.trigger))
			}
			if !r.file {
				if err := w.addTree(r, r.real, "", false); err != nil {
					w.inotifyFailed(err)
					return
				}
			}
		}
		w.publish()
		return
	}
	w.log.Warn("inotify error", "error", err)
}

// relink handles an event on the name of a symlinked root.
func (w *Watcher) relink(r *root) {
	real, err := filepath.EvalSymlinks(r.path)
	if err != nil {
		// Removed (the first half of a non-atomic `ln -sfn`), or dangling:
		// the event that re-creates it brings us back here.
		if r.trigger == "" {
			w.hit(r.path)
		}
		return
	}
	if real != r.real {
		w.repoint(r, real)
	}
}

// repoint moves r to its new target: the old one is no longer watched,
// the new one is, and the switch is one change.
func (w *Watcher) repoint(r *root, real string) {
	old := r.real
	if !r.poll {
		if r.file {
			delete(w.dirs, filepath.Dir(old))
			_ = w.fsw.Remove(filepath.Dir(old))
		} else {
			w.forget(old)
		}
	}
	r.real = real
	if fi, err := os.Stat(real); err == nil {
		r.file = !fi.IsDir()
	}
	w.log.Info("watched symlink re-pointed", "path", r.path, "from", old, "to", real)
	if r.poll {
		r.snap = nil
		w.scan(r, false)
	} else {
		var err error
		if r.file {
			if err = w.add(filepath.Dir(real)); err == nil {
				w.dirs[filepath.Dir(real)] = r
			}
		} else {
			err = w.addTree(r, real, "", false)
		}
		if errors.Is(err, errSkip) {
			err = nil
		}
		if err != nil {
			w.inotifyFailed(err)
		}
	}
	if r.trigger == "" {
		w.hit(r.path)
	}
	w.publish()
}

// rootGone handles the removal (or move) of a root's directory: it is a
// change, and the root is polled from now on so that it is seen again if
// it comes back.
func (w *Watcher) rootGone(r *root) {
	w.forget(r.real)
	if w.o.Poll != PollOff {
		r.reason = "the directory was removed or moved"
		w.log.Warn("watched directory removed or moved; polling for it", "path", r.path)
		w.startPolling(r)
		r.retry = true
	} else {
		r.reason = "the directory was removed or moved (poll is off)"
		w.log.Warn("watched directory removed or moved and poll is off; its changes will be missed", "path", r.path)
	}
	w.hit(r.path)
	w.publish()
}

// inotifyFailed falls back to polling every root after inotify ran out of
// a resource or could not start. With poll off it only warns.
func (w *Watcher) inotifyFailed(err error) {
	var lim errLimit
	reason := fmt.Sprintf("inotify failed: %v", err)
	if errors.As(err, &lim) {
		reason = fmt.Sprintf("inotify limit reached (%s = %s): %v", lim.sysctl(), readSysctl(lim.sysctl()), lim.err)
	}
	if w.o.Poll == PollOff {
		if errors.As(err, &lim) {
			w.log.Warn("inotify limit reached and poll is off; changes in unwatched directories will be missed",
				"sysctl", lim.sysctl(), "limit", readSysctl(lim.sysctl()), "watches", len(w.dirs),
				"hint", "raise "+lim.sysctl()+" on the host, or exclude large directories")
		} else {
			w.log.Warn("inotify failed and poll is off; changes will be missed", "error", err)
		}
		for _, r := range w.roots {
			r.reason = reason + " (poll is off)"
		}
		w.publish()
		return
	}
	if errors.As(err, &lim) {
		w.log.Warn("inotify limit reached; falling back to polling",
			"sysctl", lim.sysctl(), "limit", readSysctl(lim.sysctl()), "watches", len(w.dirs),
			"every", w.o.PollEvery,
			"hint", "raise "+lim.sysctl()+" on the host (sysctl -w "+lim.sysctl()+"=524288), or exclude large directories")
	} else {
		w.log.Warn("inotify failed; falling back to polling", "error", err, "every", w.o.PollEvery)
	}
	if w.fsw != nil {
		_ = w.fsw.Close()
		w.fsw = nil
	}
	clear(w.dirs)
	clear(w.linkParents)
	for _, r := range w.roots {
		if !r.poll {
			r.reason = reason
			w.startPolling(r)
			r.retry = true // the limit may be raised, or watches freed
		}
	}
	w.publish()
}

func readSysctl(name string) string {
	b, err := os.ReadFile("/proc/sys/" + strings.ReplaceAll(name, ".", "/"))
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(b))
}
