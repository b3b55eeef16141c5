package watch

import "time"

// maxSamples is how many paths a Change carries at most.
const maxSamples = 20

// burst collects the changes seen since the last OnChange.
type burst struct {
	first, last time.Time
	seen        map[string]struct{}
	samples     []string
}

func (b *burst) add(p string, now time.Time) {
	if b.seen == nil {
		b.seen = make(map[string]struct{})
		b.first = now
	}
	b.last = now
	if _, ok := b.seen[p]; ok {
		return
	}
	b.seen[p] = struct{}{}
	if len(b.samples) < maxSamples {
		b.samples = append(b.samples, p)
	}
}

// due is when the burst fires: after quiet without a change, but no later
// than maxWait after its first change.
func (b *burst) due(quiet, maxWait time.Duration) time.Time {
	d := b.last.Add(quiet)
	if m := b.first.Add(maxWait); m.Before(d) {
		return m
	}
	return d
}

// take returns the burst as a Change and empties it.
func (b *burst) take() Change {
	c := Change{Paths: b.samples, Count: len(b.seen), First: b.first, Last: b.last}
	*b = burst{}
	return c
}

// debounce turns the paths arriving on in into bursts and calls fire once
// per burst, from this goroutine only, until done is closed. A burst fires
// quiet after its last path, or maxWait after its first; the next path
// after that starts a new burst. Time is the runtime's, so tests run this
// inside a testing/synctest bubble.
func debounce(in <-chan string, done <-chan struct{}, quiet, maxWait time.Duration, fire func(Change)) {
	var b burst
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	var fireC <-chan time.Time // nil while no burst is open
	for {
		select {
		case <-done:
			return
		case p := <-in:
			now := time.Now()
			b.add(p, now)
			// Since Go 1.23 Reset also discards a fire that is already
			// due but not yet received, so a stale fire never happens.
			timer.Reset(b.due(quiet, maxWait).Sub(now))
			fireC = timer.C
		case <-fireC:
			fireC = nil
			fire(b.take())
		}
	}
}
