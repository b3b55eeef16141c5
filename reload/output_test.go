package reload

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncWriter collects what a lineSink writes.
type syncWriter struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *syncWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// Complete lines are prefixed; a line longer than maxLine is cut; a last
// line without a newline gets one; the read end is closed at EOF.
func TestCopyLines(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	out := &syncWriter{}
	sink := newLineSink(out)
	done := make(chan struct{})
	go func() { copyLines(r, "web/1/0 | ", sink); close(done) }()
	long := strings.Repeat("x", maxLine+10)
	w.WriteString("one\ntwo\n" + long + "\npartial")
	w.Close()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("copyLines did not end at EOF")
	}
	if _, err := r.Read(make([]byte, 1)); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("read end not closed at EOF: %v", err)
	}
	want := "web/1/0 | one\nweb/1/0 | two\nweb/1/0 | " + long[:maxLine] + "\nweb/1/0 | " + long[maxLine:] + "\nweb/1/0 | partial\n"
	deadline := time.Now().Add(10 * time.Second)
	for out.String() != want && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if got := out.String(); got != want {
		t.Errorf("output:\n%q\nwant:\n%q", got, want)
	}
}

// blockedWriter blocks every Write until released.
type blockedWriter struct {
	release chan struct{}
	syncWriter
}

func (w *blockedWriter) Write(p []byte) (int, error) {
	<-w.release
	return w.syncWriter.Write(p)
}

// A writer that does not take lines never blocks put: lines beyond the
// queue are dropped and counted, and the count is written when the writer
// takes lines again.
func TestLineSinkDropsWhenSlow(t *testing.T) {
	w := &blockedWriter{release: make(chan struct{})}
	s := newLineSink(w)
	total := sinkLines + 100
	for i := 0; i < total; i++ {
		s.put([]byte("line\n")) // would hang here if put waited
	}
	n := s.dropped.Load() // the writer, blocked, has not taken the count
	if n < 100-1 {
		t.Fatalf("%d lines dropped of %d with the writer blocked, want about 100", n, total)
	}
	close(w.release)
	want := fmt.Sprintf("rotini: dropped %d lines of worker output", n)
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(w.String(), want) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if got := w.String(); !strings.Contains(got, want) {
		t.Errorf("no %q in the output:\n%s", want, got)
	}
}
