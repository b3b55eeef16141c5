// Command halfclose listens on 127.0.0.1:$PORT and, per connection, reads
// until the client half-closes, then writes the SHA-256 of what it read
// (hex, one line) followed by $HALFCLOSE_BYTES bytes of a fixed pattern,
// and closes. rotini's proxy tests check that large bodies and half-close
// cross the relay byte for byte, both ways.
package main

import (
	"crypto/sha256"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"strconv"

	"github.com/coreos/go-systemd/v22/daemon"
)

// Pattern is byte i of the reply body: i*7 mod 251.
func Pattern(i int64) byte { return byte(i * 7 % 251) }

func main() {
	n, err := strconv.ParseInt(os.Getenv("HALFCLOSE_BYTES"), 10, 64)
	if err != nil {
		log.Fatalf("HALFCLOSE_BYTES: %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:"+os.Getenv("PORT"))
	if err != nil {
		log.Fatal(err)
	}
	_, _ = daemon.SdNotify(false, daemon.SdNotifyReady)
	for {
		c, err := l.Accept()
		if err != nil {
			log.Fatal(err)
		}
		go func() {
			defer c.Close()
			h := sha256.New()
			if _, err := io.Copy(h, c); err != nil {
				return
			}
			fmt.Fprintf(c, "%x\n", h.Sum(nil))
			buf := make([]byte, 64<<10)
			for off := int64(0); off < n; {
				k := min(int64(len(buf)), n-off)
				for i := range k {
					buf[i] = Pattern(off + i)
				}
				if _, err := c.Write(buf[:k]); err != nil {
					return
				}
				off += k
			}
		}()
	}
}
