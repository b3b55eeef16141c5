package proxy

import (
	"encoding/binary"
	"net"
	"net/netip"
	"strconv"
)

// Version is a PROXY protocol version (haproxy's proxy-protocol.txt).
type Version int

const (
	None Version = iota
	V1           // the text header: "PROXY TCP4 1.2.3.4 5.6.7.8 1234 80\r\n"
	V2           // the binary header
)

// ParseVersion maps the config's "", "v1" and "v2" to a Version.
func ParseVersion(s string) (Version, bool) {
	switch s {
	case "":
		return None, true
	case "v1":
		return V1, true
	case "v2":
		return V2, true
	}
	return None, false
}

func (v Version) String() string {
	switch v {
	case V1:
		return "v1"
	case V2:
		return "v2"
	}
	return ""
}

// v2Signature starts every version 2 header.
var v2Signature = []byte("\r\n\r\n\x00\r\nQUIT\n")

// Header is the PROXY protocol header that tells the backend a connection
// came from src to dst. Addresses that are not both TCP (a unix socket
// client) are sent as UNKNOWN (v1) or AF_UNSPEC (v2), which the spec
// tells receivers to accept, using the real connection's endpoints.
func Header(v Version, src, dst net.Addr) []byte {
	s, sok := src.(*net.TCPAddr)
	d, dok := dst.(*net.TCPAddr)
	ok := sok && dok
	var sip, dip netip.Addr
	if ok {
		sip, sok = netip.AddrFromSlice(s.IP)
		dip, dok = netip.AddrFromSlice(d.IP)
		ok = sok && dok
		sip, dip = sip.Unmap(), dip.Unmap()
		// The spec wants one family for both: mixed ones are sent as
		// IPv6, the IPv4 one v4-mapped.
		if sip.Is4() != dip.Is4() {
			sip, dip = netip.AddrFrom16(sip.As16()), netip.AddrFrom16(dip.As16())
		}
	}
	switch v {
	case V1:
		if !ok {
			return []byte("PROXY UNKNOWN\r\n")
		}
		proto := "TCP6"
		if sip.Is4() {
			proto = "TCP4"
		}
		return []byte("PROXY " + proto + " " + sip.WithZone("").String() + " " + dip.WithZone("").String() + " " +
			strconv.Itoa(s.Port) + " " + strconv.Itoa(d.Port) + "\r\n")
	case V2:
		h := append([]byte(nil), v2Signature...)
		h = append(h, 0x21) // version 2, command PROXY
		if !ok {
			return append(h, 0x00, 0, 0) // AF_UNSPEC, no address
		}
		fam := byte(0x21) // AF_INET6, STREAM
		if sip.Is4() {
			fam = 0x11 // AF_INET, STREAM
		}
		h = append(h, fam)
		h = binary.BigEndian.AppendUint16(h, uint16(2*sip.BitLen()/8+4))
		h = append(h, sip.AsSlice()...)
		h = append(h, dip.AsSlice()...)
		h = binary.BigEndian.AppendUint16(h, uint16(s.Port))
		return binary.BigEndian.AppendUint16(h, uint16(d.Port))
	}
	return nil
}
