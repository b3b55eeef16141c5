package sockets

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
)

// checkFree refuses an address that a listening socket of this network
// namespace already has. Without SO_REUSEPORT the kernel refuses such a
// bind itself; with it, a bind would join the other socket's group
// whenever that socket has the option too and the same owner (workers left
// by a killed rotini, a second rotini started by mistake) and split its
// traffic with a stranger.
func checkFree(network, address string) error {
	host, portS, err := net.SplitHostPort(address)
	if err != nil {
		return err
	}
	port, err := strconv.Atoi(portS)
	if err != nil || port == 0 {
		return nil // port 0: the kernel picks a free one
	}
	var want netip.Addr
	if host != "" {
		if want, err = netip.ParseAddr(host); err != nil {
			return nil // a name: resolved at bind
		}
		want = want.Unmap()
	}
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		ls, err := listening(f)
		if err != nil {
			continue
		}
		for _, ap := range ls {
			if int(ap.Port()) != port {
				continue
			}
			a := ap.Addr().Unmap()
			if !want.IsValid() || want.IsUnspecified() || a.IsUnspecified() || a == want {
				return fmt.Errorf("address already in use: a socket of this network namespace listens on %s (not one of this rotini's)", ap)
			}
		}
	}
	return nil
}

// listening parses the listening sockets of /proc/net/tcp or tcp6.
func listening(path string) ([]netip.AddrPort, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []netip.AddrPort
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 4 || fs[3] != "0A" { // TCP_LISTEN
			continue
		}
		if ap, ok := parseProcAddr(fs[1]); ok {
			out = append(out, ap)
		}
	}
	return out, sc.Err()
}

// parseProcAddr parses "0100007F:1F90": the address as the kernel's 32-bit
// words in host (little-endian) order, then the port in hex.
func parseProcAddr(s string) (netip.AddrPort, bool) {
	hexAddr, hexPort, ok := strings.Cut(s, ":")
	if !ok {
		return netip.AddrPort{}, false
	}
	b, err := hex.DecodeString(hexAddr)
	if err != nil || (len(b) != 4 && len(b) != 16) {
		return netip.AddrPort{}, false
	}
	for i := 0; i+4 <= len(b); i += 4 {
		b[i], b[i+1], b[i+2], b[i+3] = b[i+3], b[i+2], b[i+1], b[i]
	}
	port, err := strconv.ParseUint(hexPort, 16, 16)
	if err != nil {
		return netip.AddrPort{}, false
	}
	a, _ := netip.AddrFromSlice(b)
	return netip.AddrPortFrom(a, uint16(port)), true
}
