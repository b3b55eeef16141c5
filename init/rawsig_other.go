//go:build !(linux && amd64)

package pid1

import (
	"os"

	"golang.org/x/sys/unix"
)

// uncaughtByGo is empty where rotini has no handler of its own: signals 32,
// 33, 34 and SIGPROF keep the Go runtime's behaviour there.
var uncaughtByGo []unix.Signal

func notifyUncaught(chan<- os.Signal) {}
