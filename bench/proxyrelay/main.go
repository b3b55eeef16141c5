// Command proxyrelay runs package proxy's Relay on its own, for
// bench/proxy.sh: it accepts on -listen and relays every connection to
// -backend, as rotini does for an app with a proxy block, until SIGTERM.
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/hashicorp/go-hclog"

	"github.com/rotini-dev/rotini/proxy"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "`host:port` to accept on")
	backend := flag.String("backend", "", "`host:port` to relay to")
	maxConns := flag.Int("max-connections", 0, "connections relayed at once (0: the default)")
	flag.Parse()
	if *backend == "" {
		fmt.Fprintln(os.Stderr, "proxyrelay: -backend is required")
		os.Exit(2)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, "proxyrelay:", err)
		os.Exit(1)
	}
	r := proxy.New(ln, proxy.Options{
		Log:            hclog.New(&hclog.LoggerOptions{Name: "proxyrelay", Level: hclog.Warn}),
		MaxConnections: *maxConns,
	})
	r.SetTarget(1, *backend)
	fmt.Println("listening", ln.Addr())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-sig
		r.Close()
	}()
	if err := r.Serve(); err != proxy.ErrClosed {
		fmt.Fprintln(os.Stderr, "proxyrelay:", err)
		os.Exit(1)
	}
}
