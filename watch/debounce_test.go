package watch

import (
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
)

// fired is one OnChange as the debounce test sees it: when, relative to
// the first event, and how many paths.
type fired struct {
	At    time.Duration
	Count int
}

// every returns n offsets, the first at start, step apart.
func every(start, step time.Duration, n int) []time.Duration {
	at := make([]time.Duration, n)
	for i := range at {
		at[i] = start + time.Duration(i)*step
	}
	return at
}

func TestDebounce(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name           string
		quiet, maxWait time.Duration
		events         []time.Duration // when each distinct path changes
		want           []fired
	}{
		{
			name:  "burst of 500 writes is one change",
			quiet: 500 * ms, maxWait: 5 * time.Second,
			events: every(0, ms, 500),
			want:   []fired{{At: 499*ms + 500*ms, Count: 500}},
		},
		{
			// A write every 120 ms for 14 s never leaves 500 ms of quiet:
			// max_wait fires at first+5s, twice, then quiet ends it. (120,
			// not 100 ms, so that no write coincides with a max_wait.)
			name:  "trickle longer than max wait fires at max wait",
			quiet: 500 * ms, maxWait: 5 * time.Second,
			events: every(0, 120*ms, 120),
			want: []fired{
				{At: 5000 * ms, Count: 42},  // writes at 0 … 4.92 s
				{At: 10040 * ms, Count: 42}, // 5.04 … 9.96 s
				{At: 14780 * ms, Count: 36}, // 10.08 … 14.28 s, then 500 ms quiet
			},
		},
		{
			name:  "two bursts apart are two changes",
			quiet: 500 * ms, maxWait: 5 * time.Second,
			events: append(every(0, 10*ms, 3), every(2*time.Second, 10*ms, 2)...),
			want:   []fired{{At: 520 * ms, Count: 3}, {At: 2510 * ms, Count: 2}},
		},
		{
			// Negative control: without a quiet time the same kind of
			// burst is many changes, so the first case is not vacuous.
			name:  "no debounce fires per event",
			quiet: 0, maxWait: 5 * time.Second,
			events: every(0, ms, 5),
			want: []fired{
				{At: 0, Count: 1}, {At: ms, Count: 1}, {At: 2 * ms, Count: 1},
				{At: 3 * ms, Count: 1}, {At: 4 * ms, Count: 1},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				in, done := make(chan string), make(chan struct{})
				var mu sync.Mutex
				var got []fired
				start := time.Now()
				exited := make(chan struct{})
				go func() {
					defer close(exited)
					debounce(in, done, tc.quiet, tc.maxWait, func(c Change) {
						mu.Lock()
						defer mu.Unlock()
						got = append(got, fired{At: time.Since(start), Count: c.Count})
						if len(c.Paths) > maxSamples {
							t.Errorf("change has %d sample paths, want at most %d", len(c.Paths), maxSamples)
						}
					})
				}()
				for i, at := range tc.events {
					time.Sleep(time.Until(start.Add(at)))
					in <- fmt.Sprint("f", i)
				}
				time.Sleep(tc.maxWait + time.Second)
				close(done)
				<-exited
				mu.Lock()
				defer mu.Unlock()
				if diff := cmp.Diff(tc.want, got); diff != "" {
					t.Errorf("changes (-want +got):\n%s", diff)
				}
				for i := 1; i < len(got); i++ {
					if gap := got[i].At - got[i-1].At; gap < tc.quiet {
						t.Errorf("changes %d and %d are %s apart, less than the debounce %s", i-1, i, gap, tc.quiet)
					}
				}
			})
		})
	}
}

func TestBurstSamplesAndCount(t *testing.T) {
	var b burst
	now := time.Unix(1000, 0)
	for i := range 50 {
		b.add(fmt.Sprint("p", i%30), now.Add(time.Duration(i)*time.Millisecond)) // 30 distinct
	}
	c := b.take()
	if c.Count != 30 || len(c.Paths) != maxSamples || c.Paths[0] != "p0" {
		t.Errorf("Change = %d paths, %d samples, first %q; want 30, %d, p0", c.Count, len(c.Paths), c.Paths[0], maxSamples)
	}
	if want := now.Add(49 * time.Millisecond); !c.First.Equal(now) || !c.Last.Equal(want) {
		t.Errorf("First, Last = %v, %v; want %v, %v", c.First, c.Last, now, want)
	}
	if b.seen != nil || b.samples != nil {
		t.Error("take did not empty the burst")
	}
}
