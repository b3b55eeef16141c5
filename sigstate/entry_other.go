//go:build !amd64 && !arm64

package sigstate

// EntryFlag is empty where rotini has no entry point of its own: there it
// restores only what the Go runtime left of the inherited state.
const EntryFlag = ""

func fromEntry() (State, bool) { return State{}, false }
