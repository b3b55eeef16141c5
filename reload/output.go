package reload

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
)

// Prefixed worker output (AppOptions.LogPrefix). Invariant: nothing a
// worker writes, and nothing the reader of rotini's stdout or stderr does,
// can make rotini wait. Each worker's stdout and stderr are pipes that a
// goroutine of their own drains at once, so the worker never blocks on
// them either; complete lines go, prefixed, into a bounded queue per
// stream, written out by one goroutine. When the reader is slower than the
// workers the queue fills and further lines are dropped and counted; the
// count is written once the reader takes lines again.

const (
	// maxLine bounds one line of worker output; a longer one is cut into
	// lines of this size, each prefixed.
	maxLine = 4 << 10
	// sinkLines is how many lines wait for a slow reader before lines are
	// dropped: at most sinkLines*maxLine bytes per stream.
	sinkLines = 512
)

// lineSink writes lines to w from a goroutine of its own, dropping lines
// rather than waiting when w is slow.
type lineSink struct {
	w       io.Writer
	lines   chan []byte
	dropped atomic.Int64
}

func newLineSink(w io.Writer) *lineSink {
	s := &lineSink{w: w, lines: make(chan []byte, sinkLines)}
	go s.run()
	return s
}

// put queues a line, or counts it as dropped when the queue is full.
func (s *lineSink) put(line []byte) {
	select {
	case s.lines <- line:
	default:
		s.dropped.Add(1)
	}
}

func (s *lineSink) run() {
	for line := range s.lines {
		if n := s.dropped.Swap(0); n > 0 {
			fmt.Fprintf(s.w, "rotini: dropped %d lines of worker output: its reader was slower than the workers\n", n)
		}
		_, _ = s.w.Write(line)
	}
}

// outputs are the two sinks of prefixed worker output, made on first use
// and kept for rotini's life.
type outputs struct {
	once           sync.Once
	stdout, stderr *lineSink
}

func (o *outputs) sinks() (stdout, stderr *lineSink) {
	o.once.Do(func() {
		o.stdout, o.stderr = newLineSink(os.Stdout), newLineSink(os.Stderr)
	})
	return o.stdout, o.stderr
}

// workerPipes are the pipes of one prefixed worker: the write ends go to
// the worker as fds 1 and 2 and are closed in rotini once it has started.
type workerPipes struct {
	outR, outW, errR, errW *os.File
}

func newWorkerPipes() (*workerPipes, error) {
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("output pipe: %w", err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return nil, fmt.Errorf("output pipe: %w", err)
	}
	return &workerPipes{outR: outR, outW: outW, errR: errR, errW: errW}, nil
}

// started closes rotini's copies of the write ends and starts copying;
// each copy ends, closing its read end, when every holder of the write end
// (the worker and whatever it started) has closed it.
func (p *workerPipes) started(prefix string, o *outputs) {
	p.outW.Close()
	p.errW.Close()
	stdout, stderr := o.sinks()
	go copyLines(p.outR, prefix, stdout)
	go copyLines(p.errR, prefix, stderr)
}

// failed closes every end: the worker was not started.
func (p *workerPipes) failed() {
	for _, f := range []*os.File{p.outR, p.outW, p.errR, p.errW} {
		f.Close()
	}
}

// copyLines reads r line by line and queues each line, prefixed, on sink.
// A line longer than maxLine is cut; a last line without a newline is
// completed with one.
func copyLines(r *os.File, prefix string, sink *lineSink) {
	defer r.Close()
	br := bufio.NewReaderSize(r, maxLine)
	for {
		chunk, err := br.ReadSlice('\n')
		if len(chunk) > 0 {
			line := make([]byte, 0, len(prefix)+len(chunk)+1)
			line = append(append(line, prefix...), chunk...)
			if line[len(line)-1] != '\n' {
				line = append(line, '\n')
			}
			sink.put(line)
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return
		}
	}
}
