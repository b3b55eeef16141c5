package config

import (
	"net"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

type rawListener struct {
	Name      string    `hcl:"name,label"`
	NameRange hcl.Range `hcl:"name,label_range"`
	DefRange  hcl.Range `hcl:",def_range"`

	Address *hcl.Attribute `hcl:"address"`
	Backlog *hcl.Attribute `hcl:"backlog"`
	Mode    *hcl.Attribute `hcl:"mode"`
	Owner   *hcl.Attribute `hcl:"owner"`
	Group   *hcl.Attribute `hcl:"group"`
	Steer   *hcl.Attribute `hcl:"steer"`
	Grace   *hcl.Attribute `hcl:"switch_grace"`
}

// listener is a decoded listener plus what validating the apps needs.
type listener struct {
	*Listener
	defRange hcl.Range
	usedBy   string // the app that lists it
}

// listeners decodes the listen blocks; a duplicate is reported and dropped.
func (d *decoder) listeners(raws []*rawListener) []*listener {
	var out []*listener
	seen := map[string]*listener{}
	for _, r := range raws {
		l := &listener{Listener: d.listener(r), defRange: r.DefRange}
		if prev, dup := seen[r.Name]; dup {
			d.errorf(r.DefRange, "Duplicate listener name",
				"A listener named %q was already defined at %s. Listener names must be unique.", r.Name, prev.defRange)
			continue
		}
		seen[r.Name] = l
		out = append(out, l)
	}
	return out
}

func (d *decoder) listener(r *rawListener) *Listener {
	l := &Listener{Name: r.Name, Backlog: 1024}
	if !hclsyntax.ValidIdentifier(r.Name) {
		d.errorf(r.NameRange, "Invalid listener name",
			"The listener name %q is not an identifier. A listener name has letters, digits, underscores and dashes, and does not start with a digit, so that a command can say fd.NAME and LISTEN_FDNAMES can carry it.", r.Name)
	}
	if d.required(r.Address, "address", r.DefRange) {
		if s, ok := value[string](d, r.Address); ok {
			l.Network, l.Address = d.address(r.Address.Expr.Range(), s)
		}
	}
	l.Backlog = d.integer(r.Backlog, l.Backlog, 1, "Invalid backlog")
	l.Steer = d.boolean(r.Steer, true)
	l.SwitchGrace = d.duration(r.Grace, 0, false)
	if l.Network == "unix" {
		l.Mode = d.mode(r.Mode, 0o660)
		l.Owner = d.str(r.Owner, "")
		l.Group = d.str(r.Group, "")
	} else if l.Network != "" {
		what := "listener " + strconv.Quote(r.Name)
		d.unixOnly(r.Mode, what)
		d.unixOnly(r.Owner, what)
		d.unixOnly(r.Group, what)
	}
	return l
}

// address splits "tcp://HOST:PORT" or "unix:///PATH" into a network and
// an address for net.Listen. Both are empty when s is invalid.
func (d *decoder) address(rng hcl.Range, s string) (network, addr string) {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		d.errorf(rng, "Invalid listen address",
			"The address %q has no scheme: write tcp://HOST:PORT, such as \"tcp://0.0.0.0:8000\", or unix:///PATH, such as \"unix:///run/app.sock\".", s)
		return "", ""
	}
	switch scheme = strings.ToLower(scheme); scheme {
	case "unix":
		if !filepath.IsAbs(rest) {
			d.errorf(rng, "Relative unix socket path",
				"The socket path %q in %q is relative: write unix:// and then an absolute path, as in \"unix:///run/app.sock\" (three slashes).", rest, s)
			return "", ""
		}
		if !d.socketPath(rng, rest, "unix socket") {
			return "", ""
		}
		return scheme, rest
	case "tcp", "tcp4", "tcp6":
		host, port, err := net.SplitHostPort(rest)
		if err != nil {
			d.errorf(rng, "Invalid listen address",
				"The address %q is not %s://HOST:PORT: %s. Write an IPv6 host in brackets, such as \"tcp://[::1]:8000\".", s, scheme, err)
			return "", ""
		}
		if _, err := strconv.ParseUint(port, 10, 16); err != nil {
			d.errorf(rng, "Invalid port", "The port %q in %q is not a number from 0 to 65535.", port, s)
			return "", ""
		}
		if ip, err := netip.ParseAddr(host); err == nil {
			if (scheme == "tcp4" && !ip.Unmap().Is4()) || (scheme == "tcp6" && !ip.Is6()) {
				d.errorf(rng, "Invalid listen address",
					"The host %s does not belong to network %s; use tcp:// to take either family.", host, scheme)
				return "", ""
			}
		}
		return scheme, net.JoinHostPort(host, port)
	default:
		d.errorf(rng, "Invalid address scheme",
			"The address scheme %q is not supported: use tcp, tcp4, tcp6 or unix, as in \"tcp://0.0.0.0:8000\".", scheme)
		return "", ""
	}
}
