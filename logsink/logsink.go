// Package logsink puts a bounded queue between rotini's logger and its
// stderr, so that a reader that stops reading can never stall supervision.
//
// Invariant: Write never blocks on the output. It copies the line into a
// queue of at most Bound bytes and returns; a line that does not fit is
// dropped and counted. One goroutine, and only it, performs the blocking
// writes; when it gets past a gap of dropped lines it first writes one line
// saying how many were dropped, so the log says where it has a hole.
//
// That goroutine runs on an OS thread of its own with SIGTTOU and SIGTTIN
// blocked in that thread only. The kernel treats a blocked SIGTTOU like an
// ignored one, so a write to a terminal whose foreground belongs to the
// child (with `stty tostop`) goes through, as it does for tini, which ignores
// both for itself. Caught instead of blocked, the write would send SIGTTOU to
// rotini and restart forever. The disposition stays untouched, so children
// inherit nothing from it, and TTIN/TTOU sent to rotini are still delivered
// to its other threads.
package logsink

import (
	"io"
	"runtime"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Bound is how many bytes of log lines may wait for a slow reader; past it,
// lines are dropped. 256 KiB is thousands of lines: a burst survives a
// reader that pauses, a reader that stopped costs rotini nothing more.
const Bound = 256 << 10

// Sink is a non-blocking io.Writer in front of a blocking one.
type Sink struct {
	out    io.Writer
	bound  int
	notice func(dropped uint64) []byte

	mu      sync.Mutex
	queue   []entry
	queued  int    // bytes in queue
	dropped uint64 // dropped since the last entry was queued
	busy    bool   // the writer holds entries taken from the queue
	wake    chan struct{}
	idle    chan struct{} // closed and replaced whenever the queue empties
}

// entry is a line to write, or a gap of dropped lines (dropped > 0).
type entry struct {
	line    []byte
	dropped uint64
}

// New starts the writer goroutine for out, queueing at most bound bytes.
func New(out io.Writer, bound int) *Sink {
	s := &Sink{out: out, bound: bound, notice: plainNotice, wake: make(chan struct{}, 1), idle: make(chan struct{})}
	go s.run()
	return s
}

// SetNotice sets how the line written in place of a gap of n dropped lines
// is formatted, so that it matches the logger's format.
func (s *Sink) SetNotice(f func(n uint64) []byte) {
	s.mu.Lock()
	s.notice = f
	s.mu.Unlock()
}

func plainNotice(n uint64) []byte {
	return []byte("rotini: " + strconv.FormatUint(n, 10) + " log lines dropped: stderr was not read\n")
}

// Write queues p, or drops it when the queue is full. It always reports
// success: a logger has nothing better to do with an error.
func (s *Sink) Write(p []byte) (int, error) {
	s.mu.Lock()
	if s.queued+len(p) > s.bound {
		s.dropped++
		s.mu.Unlock()
		return len(p), nil
	}
	if s.dropped > 0 {
		s.queue = append(s.queue, entry{dropped: s.dropped})
		s.dropped = 0
	}
	s.queue = append(s.queue, entry{line: append([]byte(nil), p...)})
	s.queued += len(p)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
	return len(p), nil
}

// Flush waits until every queued line is written, or timeout passes (the
// reader may never come back). A gap at the end is reported first.
func (s *Sink) Flush(timeout time.Duration) {
	s.mu.Lock()
	if s.dropped > 0 {
		s.queue = append(s.queue, entry{dropped: s.dropped})
		s.dropped = 0
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
	for len(s.queue) > 0 || s.busy {
		idle := s.idle
		s.mu.Unlock()
		select {
		case <-idle:
		case <-time.After(timeout):
			return
		}
		s.mu.Lock()
	}
	s.mu.Unlock()
}

func (s *Sink) run() {
	runtime.LockOSThread() // never unlocked: the mask below belongs to this thread
	var set unix.Sigset_t
	for _, sig := range []unix.Signal{unix.SIGTTOU, unix.SIGTTIN} {
		set.Val[(sig-1)/64] |= 1 << ((uint(sig) - 1) % 64)
	}
	_ = unix.PthreadSigmask(unix.SIG_BLOCK, &set, nil)
	for range s.wake {
		for {
			s.mu.Lock()
			batch := s.queue
			s.queue = nil
			s.busy = len(batch) > 0
			if !s.busy {
				close(s.idle)
				s.idle = make(chan struct{})
				s.mu.Unlock()
				break
			}
			notice := s.notice
			s.mu.Unlock()
			for _, e := range batch {
				if e.dropped > 0 {
					_, _ = s.out.Write(notice(e.dropped))
					continue
				}
				_, _ = s.out.Write(e.line)
				s.mu.Lock()
				s.queued -= len(e.line)
				s.mu.Unlock()
			}
		}
	}
}
