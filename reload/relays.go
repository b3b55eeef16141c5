package reload

import (
	"errors"
	"fmt"

	"github.com/rotini-dev/rotini/proxy"
	"github.com/rotini-dev/rotini/sockets"
)

// startRelays starts proxy mode for a: rotini accepts on a's listeners and
// relays to the serving generation's ports. The sockets are shared by every
// generation (the relay, not the kernel, picks the generation).
func startRelays(a *app, socks sockets.Authority) error {
	a.relays = map[string]*proxy.Relay{}
	a.ports = &proxy.Ports{Min: a.o.Proxy.PortMin, Max: a.o.Proxy.PortMax}
	for _, name := range a.o.Listen {
		s, err := socks.Socket(name, 1)
		if err != nil {
			return err
		}
		ln, err := proxy.FileListener(s.File)
		if err != nil {
			return fmt.Errorf("listener %s: %w", name, err)
		}
		o := a.o.Proxy.Relay
		o.Log = a.log.Named("proxy").With("listener", name)
		r := proxy.New(ln, o)
		a.relays[name] = r
		go func() {
			if err := r.Serve(); err != nil && !errors.Is(err, proxy.ErrClosed) {
				o.Log.Error("relay stopped", "error", err)
			}
		}()
	}
	return nil
}
