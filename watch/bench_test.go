package watch

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"
)

var benchTreeState struct {
	once  sync.Once
	dir   string
	files int
	dirs  int
	err   error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if benchTreeState.dir != "" {
		os.RemoveAll(benchTreeState.dir)
	}
	os.Exit(code)
}

// benchTree builds, once per test binary, a tree of 100,000 files in
// 10,000 directories (100 top-level directories of 100 subdirectories of
// 10 files; with -short a tenth of it) and returns its root. It is shared
// by the benchmarks and removed by TestMain.
func benchTree(b *testing.B) (dir string, files, dirs int) {
	s := &benchTreeState
	s.once.Do(func() {
		top, sub, per := 100, 100, 10
		if testing.Short() {
			top = 10
		}
		s.dir, s.err = os.MkdirTemp("", "rotini-watch-bench-")
		if s.err != nil {
			return
		}
		for i := range top {
			for j := range sub {
				d := filepath.Join(s.dir, fmt.Sprintf("d%03d", i), fmt.Sprintf("s%03d", j))
				if s.err = os.MkdirAll(d, 0o755); s.err != nil {
					return
				}
				for k := range per {
					if s.err = os.WriteFile(filepath.Join(d, fmt.Sprintf("f%d.py", k)), []byte("pass\n"), 0o644); s.err != nil {
						return
					}
				}
			}
		}
		s.files, s.dirs = top*sub*per, top*sub+top
	})
	if s.err != nil {
		b.Fatal(s.err)
	}
	return s.dir, s.files, s.dirs
}

func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// BenchmarkSetup100k measures New+Start on the tree (inotify, with the real
// self-test) and reports the heap the watcher holds.
func BenchmarkSetup100k(b *testing.B) {
	dir, files, dirs := benchTree(b)
	var heap, watches float64
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		before := heapInUse()
		b.StartTimer()
		w, err := New(Options{Paths: []string{dir}})
		if err != nil {
			b.Fatal(err)
		}
		w.Start()
		b.StopTimer()
		st := w.State()
		if st.Mode != ModeInotify {
			b.Fatalf("mode %s: %s", st.Mode, st.Reason)
		}
		heap = float64(heapInUse()-before) / (1 << 20)
		watches = float64(st.Watches)
		w.Close()
		b.StartTimer()
	}
	b.ReportMetric(heap, "heap-MiB")
	b.ReportMetric(watches, "watches")
	b.ReportMetric(float64(files), "files")
	if int(watches) != dirs+1 {
		b.Errorf("%v watches, want %d", watches, dirs+1)
	}
}

// BenchmarkSetupPolling100k measures New+Start in polling mode, which
// includes the baseline pass, and the heap of the snapshot.
func BenchmarkSetupPolling100k(b *testing.B) {
	dir, _, _ := benchTree(b)
	var heap float64
	for b.Loop() {
		b.StopTimer()
		before := heapInUse()
		b.StartTimer()
		w, err := New(Options{Paths: []string{dir}, Poll: PollInterval, PollEvery: time.Hour})
		if err != nil {
			b.Fatal(err)
		}
		w.Start()
		b.StopTimer()
		heap = float64(heapInUse()-before) / (1 << 20)
		w.Close()
		b.StartTimer()
	}
	b.ReportMetric(heap, "heap-MiB")
}

// BenchmarkPollCycle measures one polling pass over the tree with nothing
// changed: what polling costs every PollEvery.
func BenchmarkPollCycle(b *testing.B) {
	dir, files, _ := benchTree(b)
	w, err := New(Options{Paths: []string{dir}, Poll: PollInterval, PollEvery: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close() // never started: pollOnce runs here, and no change may be found
	b.ReportAllocs()
	for b.Loop() {
		w.pollOnce()
	}
	if n := len(w.hits); n != 0 {
		b.Errorf("an unchanged tree produced %d changes", n)
	}
	b.ReportMetric(float64(files), "files")
}
