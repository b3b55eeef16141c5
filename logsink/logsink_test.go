package logsink

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// gate is a writer that blocks until opened, like a pipe nobody reads.
type gate struct {
	open chan struct{}
	mu   sync.Mutex
	buf  bytes.Buffer
}

func (g *gate) Write(p []byte) (int, error) {
	<-g.open
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.buf.Write(p)
}

func (g *gate) String() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.buf.String()
}

// Writes to a stalled output return at once; what does not fit is dropped
// and reported, in its place, once the output moves again.
func TestStalledOutput(t *testing.T) {
	g := &gate{open: make(chan struct{})}
	s := New(g, 100)
	done := make(chan struct{})
	go func() {
		for i := range 50 {
			fmt.Fprintf(s, "line %02d\n", i) // 8 bytes each
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Write blocked on a stalled output")
	}
	close(g.open)
	s.Flush(10 * time.Second)
	fmt.Fprintf(s, "after\n")
	s.Flush(10 * time.Second)
	lines := strings.Split(strings.TrimSuffix(g.String(), "\n"), "\n")
	// The writer may have taken line 00 before it blocked, so 12 or 13
	// lines fit: 100 bytes of queue, plus the one being written.
	last := lines[len(lines)-2]
	if !strings.HasPrefix(last, "rotini: ") || !strings.Contains(last, "log lines dropped") {
		t.Fatalf("no notice before the line after the gap:\n%s", g.String())
	}
	var kept, dropped int
	fmt.Sscanf(last, "rotini: %d log lines dropped", &dropped)
	kept = len(lines) - 2
	if kept+dropped != 50 || lines[len(lines)-1] != "after" {
		t.Fatalf("kept %d + dropped %d != 50, or wrong order:\n%s", kept, dropped, g.String())
	}
	for i, l := range lines[:kept] {
		if l != fmt.Sprintf("line %02d", i) {
			t.Fatalf("line %d is %q: lines must keep their order\n%s", i, l, g.String())
		}
	}
}

// A gap at the very end is reported by Flush.
func TestFlushReportsTrailingGap(t *testing.T) {
	g := &gate{open: make(chan struct{})}
	s := New(g, 10)
	for range 5 {
		fmt.Fprintf(s, "0123456\n")
	}
	close(g.open)
	s.Flush(10 * time.Second)
	if !strings.Contains(g.String(), "log lines dropped") {
		t.Fatalf("no notice:\n%s", g.String())
	}
}
