package watch

import (
	"errors"
	"path/filepath"
	"slices"
	"time"

	"github.com/fsnotify/fsnotify"
)

// DefaultRetryEvery is how often a root that fell back to polling for a
// reason that may pass — inotify ran out of watches or instances, or the
// root was removed — tries inotify again.
const DefaultRetryEvery = 30 * time.Second

// retrying reports whether some root polls only until inotify works again.
func (w *Watcher) retrying() bool {
	for _, r := range w.roots {
		if r.poll && r.retry {
			return true
		}
	}
	return false
}

// retryInotify moves each such root back to inotify when its watches can
// be added now. A last polling pass after the watches are in place reports
// what changed since the previous pass, so nothing falls between the two
// ways of watching. A root that still cannot be watched goes on polling.
func (w *Watcher) retryInotify() {
	if w.fsw == nil {
		fsw, err := fsnotify.NewBufferedWatcher(eventBuffer)
		if err != nil {
			w.log.Debug("inotify still unavailable; polling on", "error", err)
			return
		}
		w.fsw = fsw
	}
	back := 0
	for _, r := range w.roots {
		if !r.poll || !r.retry {
			continue
		}
		err := w.watchRoot(r)
		top := r.real
		if r.file {
			top = filepath.Dir(r.real)
		}
		if _, ok := w.dirs[top]; err == nil && !ok {
			err = errors.New("not there yet") // addTree skips a missing directory
		}
		if err != nil {
			w.forget(top)
			w.unlinkParent(r)
			w.log.Debug("cannot watch with inotify yet; polling on", "path", r.path, "error", err)
			continue
		}
		w.scan(r, true)
		r.poll, r.retry, r.snap, r.reason = false, false, nil, ""
		back++
		w.log.Info("inotify works again; no longer polling", "path", r.path)
	}
	if back == 0 && len(w.dirs) == 0 && len(w.linkParents) == 0 {
		_ = w.fsw.Close() // an instance counts against max_user_instances
		w.fsw = nil
	}
	w.publish()
}

// unlinkParent drops r from the watched parents of symlinked roots.
func (w *Watcher) unlinkParent(r *root) {
	for p, rs := range w.linkParents {
		rs = slices.DeleteFunc(rs, func(x *root) bool { return x == r })
		if len(rs) > 0 {
			w.linkParents[p] = rs
			continue
		}
		delete(w.linkParents, p)
		_ = w.fsw.Remove(p)
	}
}
