package reload

import (
	"fmt"

	"github.com/rotini-dev/rotini/watch"
)

// newWatcher sets up a's watcher, which once started calls reload with
// why for each change; nil when it cannot be set up, which is logged: the
// app runs without it.
func newWatcher(a *app, reload func(why string)) *watch.Watcher {
	o := *a.watchOpts
	o.Log = a.log.Named("watch")
	o.OnChange = func(c watch.Change) {
		why := fmt.Sprintf("watch: %d changed", c.Count)
		if len(c.Paths) > 0 {
			why += " (" + c.Paths[0]
			if c.Count > 1 {
				why += ", …"
			}
			why += ")"
		}
		reload(why)
	}
	w, err := watch.New(o)
	if err != nil {
		a.log.Error("cannot watch; reload by signal or CLI only", "paths", o.Paths, "error", err)
		return nil
	}
	return w
}
