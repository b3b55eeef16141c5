//go:build amd64 || arm64

package sigstate

// EntryFlag is the linker flag that makes entry (entry_$GOARCH.s) the
// process entry point of the binary. Every build of rotini passes it (the
// Makefile, docker/Dockerfile, the tests' and benchmarks' builds); a build
// without it still works and restores only what the Go runtime left of
// the inherited state (see the package doc).
const EntryFlag = "-E=github.com/rotini-dev/rotini/sigstate.entry"

// Written by entry before the runtime starts, read-only afterwards. They
// hold no pointers, so the runtime, which never clears them, sees them as
// entry left them.
var (
	entryCaptured uint64 // 1 once entry ran
	entryBlocked  uint64 // the blocked mask at entry
	entryIgnored  uint64 // bit N-1 set when signal N was SIG_IGN at entry
	entryAct      [4]uint64
)

// entry is implemented in assembly; it is never called from Go.
func entry()

// fromEntry returns the state entry recorded, if it ran.
func fromEntry() (State, bool) {
	if entryCaptured != 1 {
		return State{}, false
	}
	return State{Ignored: entryIgnored, Blocked: entryBlocked}, true
}
