package main

import (
	"flag"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"golang.org/x/sys/unix"

	"github.com/rotini-dev/rotini/procfs"
)

// Roles that attack rotini's notify socket, as a hostile worker would.
//
//	forge --app NAME   say READY=1 for itself, print "ready"; then, for each
//	                   worker of app NAME started by the same rotini (a
//	                   sibling whose environment has ROTINI_APP=NAME and
//	                   that leads its process group), start a child that
//	                   joins that worker's process group (setpgid) and
//	                   sends READY=1 to its own NOTIFY_SOCKET and to the
//	                   victim's; print "forged pid=P gen=G". Like signals
//	                   otherwise.
//	forge-send PATH…   send READY=1 to each socket path (the child above)
//	flood              say READY=1, print "flooding", then send STATUS=
//	                   lines to NOTIFY_SOCKET as fast as it can from 4
//	                   goroutines until TERM

func forgeRole(args []string) {
	c := notifyAll()
	fs := flag.NewFlagSet("forge", flag.ExitOnError)
	victim := fs.String("app", "", "the `app` whose workers to mark ready")
	ignore, exitOn := addSignalFlags(fs)
	fs.Parse(args)
	p := newSignalPrinter(c, *ignore, *exitOn)
	if sent, err := daemon.SdNotify(false, daemon.SdNotifyReady); err != nil || !sent {
		fatalf("sd_notify READY=1: sent=%t error=%v", sent, err)
	}
	say("ready")
	go p.run()
	exe, err := os.Executable()
	if err != nil {
		fatalf("find own executable: %v", err)
	}
	done := map[int]bool{}
	for {
		for _, pid := range siblings() {
			if done[pid] {
				continue
			}
			env := environOf(pid)
			if env["ROTINI_APP"] != *victim {
				continue
			}
			if pgid, err := unix.Getpgid(pid); err != nil || pgid != pid {
				continue
			}
			done[pid] = true
			cmd := exec.Command(exe, "forge-send", os.Getenv("NOTIFY_SOCKET"), env["NOTIFY_SOCKET"])
			cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pgid: pid}
			if err := cmd.Run(); err != nil {
				say("forge failed pid=%d: %v", pid, err)
				continue
			}
			say("forged pid=%d gen=%s", pid, env["ROTINI_GENERATION"])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// siblings lists the other children of this process's parent.
func siblings() []int {
	kids, _ := procfs.Children(os.Getppid())
	out := kids[:0]
	for _, pid := range kids {
		if pid != os.Getpid() {
			out = append(out, pid)
		}
	}
	return out
}

func environOf(pid int) map[string]string {
	kvs, _ := procfs.Environ(pid)
	env := map[string]string{}
	for _, kv := range kvs {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	return env
}

func forgeSendRole(paths []string) {
	for _, path := range paths {
		if path == "" {
			continue
		}
		conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
		if err != nil {
			continue // refused: that is the point
		}
		conn.Write([]byte("READY=1"))
		conn.Close()
	}
}

func floodRole(args []string) {
	c := notifyAll()
	fs := flag.NewFlagSet("flood", flag.ExitOnError)
	ignore, exitOn := addSignalFlags(fs)
	fs.Parse(args)
	p := newSignalPrinter(c, *ignore, *exitOn)
	if sent, err := daemon.SdNotify(false, daemon.SdNotifyReady); err != nil || !sent {
		fatalf("sd_notify READY=1: sent=%t error=%v", sent, err)
	}
	path := os.Getenv("NOTIFY_SOCKET")
	for range 4 {
		go func() {
			conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
			if err != nil {
				fatalf("dial %s: %v", path, err)
			}
			msg := []byte("STATUS=flood\nREADY=1")
			for {
				conn.Write(msg)
			}
		}()
	}
	say("flooding")
	p.run()
}
