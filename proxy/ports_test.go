package proxy

import (
	"errors"
	"net"
	"slices"
	"strconv"
	"testing"
)

// freeRange finds n consecutive ports below the ephemeral range that
// nothing listens on now.
func freeRange(t *testing.T, n int) int {
	t.Helper()
	for lo := 21000; lo < 32000; lo += n {
		ok := true
		for port := lo; port < lo+n && ok; port++ {
			_, err := bindFree(port)
			ok = err == nil
		}
		if ok {
			return lo
		}
	}
	t.Skip("no free port range")
	return 0
}

// Two generations never share a port, a port in use is skipped, and a
// released port comes back.
func TestPortsRange(t *testing.T) {
	lo := freeRange(t, 4)
	p := &Ports{Min: lo, Max: lo + 3}
	busy, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(lo+1))
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	g1, err := p.Take(2)
	if err != nil {
		t.Fatal(err)
	}
	if want := []int{lo, lo + 2}; !slices.Equal(g1, want) {
		t.Fatalf("first generation got %v, want %v (lo+1 is in use)", g1, want)
	}
	g2, err := p.Take(1)
	if err != nil {
		t.Fatal(err)
	}
	if want := []int{lo + 3}; !slices.Equal(g2, want) {
		t.Fatalf("second generation got %v, want %v", g2, want)
	}
	if _, err := p.Take(1); !errors.Is(err, ErrNoPort) {
		t.Fatalf("Take with every port held or busy: %v, want ErrNoPort", err)
	}
	p.Release(g1)
	g3, err := p.Take(2)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Sort(g3); !slices.Equal(g3, g1) {
		t.Fatalf("after release got %v, want %v back", g3, g1)
	}
}

func TestPortsEphemeral(t *testing.T) {
	p := &Ports{}
	got, err := p.Take(3)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for _, port := range got {
		if port <= 0 || seen[port] {
			t.Fatalf("ports %v: not distinct positive ports", got)
		}
		seen[port] = true
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			t.Fatalf("port %d handed out but cannot be bound: %v", port, err)
		}
		ln.Close()
	}
}
