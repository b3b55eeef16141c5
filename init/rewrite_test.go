package pid1

import (
	"testing"

	"golang.org/x/sys/unix"
)

func TestParseRewrite(t *testing.T) {
	for _, tc := range []struct {
		spec     string
		from, to unix.Signal
		bad      bool
	}{
		{spec: "TERM:QUIT", from: unix.SIGTERM, to: unix.SIGQUIT},
		{spec: "15:3", from: unix.SIGTERM, to: unix.SIGQUIT},
		{spec: "sigwinch:0", from: unix.SIGWINCH, to: 0},
		{spec: "USR1: 0", from: unix.SIGUSR1, to: 0},
		{spec: "HUP:RTMIN+3", from: unix.SIGHUP, to: 37},
		{spec: "TERM", bad: true},
		{spec: "TERM:", bad: true},
		{spec: ":QUIT", bad: true},
		{spec: "0:TERM", bad: true},
		{spec: "TERM:NOPE", bad: true},
		{spec: "TERM:65", bad: true},
	} {
		from, to, err := ParseRewrite(tc.spec)
		switch {
		case tc.bad && err == nil:
			t.Errorf("ParseRewrite(%q) = %v, %v; want an error", tc.spec, from, to)
		case !tc.bad && (err != nil || from != tc.from || to != tc.to):
			t.Errorf("ParseRewrite(%q) = %v, %v, %v; want %v, %v", tc.spec, from, to, err, tc.from, tc.to)
		}
	}
}
