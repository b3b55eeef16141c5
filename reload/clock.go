package reload

import "time"

// clock is the time the state machine decides by: its timers (readiness
// and stop timeouts, min_uptime, restart backoff, before_reload's timeout)
// and the instants that crash counting compares. rotini's is the real one;
// the state machine's tests use one that moves only when the test says, so
// that no test waits for a timer or depends on how fast the machine is.
// Log lines and reported durations read the real time.
type clock interface {
	Now() time.Time
	// AfterFunc calls f in its own goroutine once d has passed, unless
	// the returned timer was stopped first.
	AfterFunc(d time.Duration, f func()) timer
}

type timer interface{ Stop() bool }

type realClock struct{}

func (realClock) Now() time.Time                            { return time.Now() }
func (realClock) AfterFunc(d time.Duration, f func()) timer { return time.AfterFunc(d, f) }
