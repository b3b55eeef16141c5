package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
)

// A decoder written from haproxy's proxy-protocol.txt, independent of the
// encoder: it checks what a strict receiver checks.

type ppHeader struct {
	Version  int
	Command  string // "PROXY" or "LOCAL"
	Family   string // "TCP4", "TCP6", "UNKNOWN" (v1) or "UNSPEC" (v2)
	Src, Dst netip.AddrPort
}

// decodePP reads one header from r, telling the versions apart by their
// first bytes as section 2.2 of the spec allows.
func decodePP(r *bufio.Reader) (ppHeader, error) {
	sig, err := r.Peek(12)
	if err != nil {
		return ppHeader{}, err
	}
	if bytes.Equal(sig, []byte{0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A}) {
		return decodeV2(r)
	}
	if bytes.HasPrefix(sig, []byte("PROXY ")) {
		return decodeV1(r)
	}
	return ppHeader{}, fmt.Errorf("no PROXY protocol signature: %q", sig)
}

// decodeV1: "PROXY" SP proto SP src SP dst SP sport SP dport CRLF, at most
// 107 bytes in all; "PROXY UNKNOWN" may be followed by anything up to CRLF.
func decodeV1(r *bufio.Reader) (ppHeader, error) {
	var line []byte
	for len(line) < 107 {
		b, err := r.ReadByte()
		if err != nil {
			return ppHeader{}, err
		}
		line = append(line, b)
		if bytes.HasSuffix(line, []byte("\r\n")) {
			break
		}
	}
	if !bytes.HasSuffix(line, []byte("\r\n")) {
		return ppHeader{}, errors.New("v1: no CRLF within 107 bytes")
	}
	f := strings.Split(string(line[:len(line)-2]), " ")
	h := ppHeader{Version: 1, Command: "PROXY"}
	if len(f) >= 2 && f[0] == "PROXY" && f[1] == "UNKNOWN" {
		h.Family = "UNKNOWN"
		return h, nil
	}
	if len(f) != 6 || f[0] != "PROXY" || (f[1] != "TCP4" && f[1] != "TCP6") {
		return ppHeader{}, fmt.Errorf("v1: malformed line %q", line)
	}
	h.Family = f[1]
	var addrs [2]netip.Addr
	var ports [2]uint16
	for i := range 2 {
		a, err := netip.ParseAddr(f[2+i])
		if err != nil || a.Zone() != "" || (h.Family == "TCP4") != a.Is4() {
			return ppHeader{}, fmt.Errorf("v1: bad %s address %q", h.Family, f[2+i])
		}
		addrs[i] = a
		p := f[4+i]
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil || (len(p) > 1 && p[0] == '0') {
			return ppHeader{}, fmt.Errorf("v1: bad port %q", p)
		}
		ports[i] = uint16(n)
	}
	h.Src = netip.AddrPortFrom(addrs[0], ports[0])
	h.Dst = netip.AddrPortFrom(addrs[1], ports[1])
	return h, nil
}

// decodeV2: 12-byte signature, version/command byte, family/transport
// byte, 16-bit big-endian length of what follows, then the addresses.
func decodeV2(r *bufio.Reader) (ppHeader, error) {
	var fixed [16]byte
	if _, err := io.ReadFull(r, fixed[:]); err != nil {
		return ppHeader{}, err
	}
	if fixed[12]>>4 != 2 {
		return ppHeader{}, fmt.Errorf("v2: version %d", fixed[12]>>4)
	}
	h := ppHeader{Version: 2}
	switch fixed[12] & 0xF {
	case 0:
		h.Command = "LOCAL"
	case 1:
		h.Command = "PROXY"
	default:
		return ppHeader{}, fmt.Errorf("v2: command %d", fixed[12]&0xF)
	}
	n := int(fixed[14])<<8 | int(fixed[15])
	rest := make([]byte, n)
	if _, err := io.ReadFull(r, rest); err != nil {
		return ppHeader{}, err
	}
	var alen int
	switch fixed[13] {
	case 0x00:
		h.Family = "UNSPEC"
		return h, nil
	case 0x11:
		h.Family, alen = "TCP4", 4
	case 0x21:
		h.Family, alen = "TCP6", 16
	default:
		return ppHeader{}, fmt.Errorf("v2: family/transport byte %#x", fixed[13])
	}
	if n < 2*alen+4 {
		return ppHeader{}, fmt.Errorf("v2: length %d too short for %s", n, h.Family)
	}
	src, _ := netip.AddrFromSlice(rest[:alen])
	dst, _ := netip.AddrFromSlice(rest[alen : 2*alen])
	sp := uint16(rest[2*alen])<<8 | uint16(rest[2*alen+1])
	dp := uint16(rest[2*alen+2])<<8 | uint16(rest[2*alen+3])
	h.Src, h.Dst = netip.AddrPortFrom(src, sp), netip.AddrPortFrom(dst, dp)
	return h, nil
}

func tcpAddr(s string) *net.TCPAddr {
	ap := netip.MustParseAddrPort(s)
	return net.TCPAddrFromAddrPort(ap)
}

func TestHeaderDecodes(t *testing.T) {
	unixAddr := &net.UnixAddr{Name: "/run/app.sock", Net: "unix"}
	cases := []struct {
		name     string
		src, dst net.Addr
		family   string
		wantSrc  string
		wantDst  string
	}{
		{"tcp4", tcpAddr("192.0.2.7:51234"), tcpAddr("10.0.0.1:80"), "TCP4", "192.0.2.7:51234", "10.0.0.1:80"},
		{"tcp6", tcpAddr("[2001:db8::1]:65535"), tcpAddr("[::1]:8000"), "TCP6", "[2001:db8::1]:65535", "[::1]:8000"},
		{"v4 as v4-mapped", tcpAddr("[::ffff:192.0.2.7]:1"), tcpAddr("10.0.0.1:0"), "TCP4", "192.0.2.7:1", "10.0.0.1:0"},
		{"mixed", tcpAddr("192.0.2.7:1"), tcpAddr("[2001:db8::2]:443"), "TCP6", "[::ffff:192.0.2.7]:1", "[2001:db8::2]:443"},
	}
	for _, v := range []Version{V1, V2} {
		for _, c := range cases {
			t.Run(v.String()+"/"+c.name, func(t *testing.T) {
				hdr := Header(v, c.src, c.dst)
				r := bufio.NewReader(io.MultiReader(bytes.NewReader(hdr), strings.NewReader("GET /")))
				h, err := decodePP(r)
				if err != nil {
					t.Fatalf("decoding %q: %v", hdr, err)
				}
				want := ppHeader{Version: int(v), Command: "PROXY", Family: c.family,
					Src: netip.MustParseAddrPort(c.wantSrc), Dst: netip.MustParseAddrPort(c.wantDst)}
				if h != want {
					t.Errorf("decoded %+v from %q, want %+v", h, hdr, want)
				}
				if rest, _ := io.ReadAll(r); string(rest) != "GET /" {
					t.Errorf("the header took more than its bytes: left %q", rest)
				}
			})
		}
		t.Run(v.String()+"/unix client", func(t *testing.T) {
			h, err := decodePP(bufio.NewReader(bytes.NewReader(Header(v, unixAddr, unixAddr))))
			if err != nil {
				t.Fatal(err)
			}
			fam := map[Version]string{V1: "UNKNOWN", V2: "UNSPEC"}[v]
			if h.Family != fam || h.Command != "PROXY" {
				t.Errorf("decoded %+v, want family %s", h, fam)
			}
		})
	}
}

// Through the relay: the backend sees the client's address and port, and
// the address it connected to, before the client's first byte.
func TestRelayProxyProtocol(t *testing.T) {
	for _, v := range []Version{V1, V2} {
		t.Run(v.String(), func(t *testing.T) {
			got := make(chan ppHeader, 1)
			baddr := startBackend(t, func(c net.Conn) {
				br := bufio.NewReader(c)
				h, err := decodePP(br)
				if err != nil {
					t.Errorf("backend: %v", err)
					return
				}
				got <- h
				io.Copy(c, br)
			})
			r, addr := startRelay(t, Options{ProxyProtocol: v})
			r.SetTarget(1, baddr)
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := c.Write([]byte("hello")); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 5)
			if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "hello" {
				t.Fatalf("echo: %q, %v", buf, err)
			}
			h := <-got
			want := ppHeader{Version: int(v), Command: "PROXY", Family: "TCP4",
				Src: unmapped(c.LocalAddr()), Dst: unmapped(c.RemoteAddr())}
			if h != want {
				t.Errorf("backend got %+v, want %+v", h, want)
			}
		})
	}
}

func unmapped(a net.Addr) netip.AddrPort {
	ap := a.(*net.TCPAddr).AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}
