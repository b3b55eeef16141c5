package activation

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"
)

// unboundGrace is how old a notify directory without a socket must be
// before it counts as stale: a rotini starting right now may have made it
// and not bound its socket yet.
const unboundGrace = time.Minute

// removeStaleNotifyDirs removes the notify directories in dir that a dead
// rotini left behind (SIGKILL, OOM), so they do not pile up in /run.
//
// A directory is stale when nothing has its socket bound: connecting to it
// is refused. That asks the kernel rather than a pid, because rotinis in
// different PID namespaces share /run, and a pid from another namespace
// means nothing here.
func removeStaleNotifyDirs(log hclog.Logger, dir string) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), "notify-") {
			continue
		}
		own := filepath.Join(dir, e.Name())
		if !staleNotifyDir(own) {
			continue
		}
		if err := os.RemoveAll(own); err != nil {
			log.Warn("cannot remove the notify directory of a dead rotini", "path", own, "error", err)
			continue
		}
		log.Debug("removed the notify directory of a dead rotini", "path", own)
	}
}

func staleNotifyDir(own string) bool {
	sock := filepath.Join(own, "notify.sock")
	if _, err := os.Lstat(sock); errors.Is(err, os.ErrNotExist) {
		fi, err := os.Stat(own)
		return err == nil && time.Since(fi.ModTime()) > unboundGrace
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err == nil {
		c.Close()
		return false
	}
	return errors.Is(err, unix.ECONNREFUSED)
}
