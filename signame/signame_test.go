package signame

import (
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in      string
		want    unix.Signal
		wantErr string
	}{
		{in: "TERM", want: unix.SIGTERM},
		{in: "SIGTERM", want: unix.SIGTERM},
		{in: "term", want: unix.SIGTERM},
		{in: "sigterm", want: unix.SIGTERM},
		{in: " HUP ", want: unix.SIGHUP},
		{in: "15", want: unix.SIGTERM},
		{in: "9", want: unix.SIGKILL},
		{in: "64", want: 64},
		{in: "USR2", want: unix.SIGUSR2},
		{in: "WINCH", want: unix.SIGWINCH},
		{in: "IOT", want: unix.SIGABRT},
		{in: "SIGCLD", want: unix.SIGCHLD},
		{in: "RTMIN", want: 34},
		{in: "SIGRTMIN+3", want: 37},
		{in: "rtmax", want: 64},
		{in: "RTMAX-2", want: 62},
		{in: "", wantErr: "empty signal name"},
		{in: "0", wantErr: "out of range"},
		{in: "65", wantErr: "out of range"},
		{in: "-1", wantErr: "out of range"},
		{in: "TERMINATE", wantErr: `unknown signal "TERMINATE": want a name (HUP, INT, QUIT,`},
		{in: "RTMIN+31", wantErr: "unknown signal"},
		{in: "RTMIN-1", wantErr: "unknown signal"},
		{in: "RTMAX+1", wantErr: "unknown signal"},
		{in: "SIG", wantErr: "unknown signal"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := Parse(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Parse(%q) = %v, %v; want error containing %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Parse(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestName(t *testing.T) {
	tests := []struct {
		sig  unix.Signal
		want string
	}{
		{sig: unix.SIGTERM, want: "TERM"},
		{sig: unix.SIGHUP, want: "HUP"},
		{sig: 32, want: "32"},
		{sig: 34, want: "RTMIN"},
		{sig: 35, want: "RTMIN+1"},
		{sig: 49, want: "RTMIN+15"},
		{sig: 50, want: "RTMAX-14"},
		{sig: 64, want: "RTMAX"},
	}
	for _, tt := range tests {
		if got := Name(tt.sig); got != tt.want {
			t.Errorf("Name(%d) = %q, want %q", tt.sig, got, tt.want)
		}
	}
}

// Every signal survives a round trip through its name.
func TestRoundTrip(t *testing.T) {
	for sig := unix.Signal(1); sig <= Max; sig++ {
		got, err := Parse(Name(sig))
		if err != nil || got != sig {
			t.Errorf("Parse(Name(%d)) = Parse(%q) = %v, %v", sig, Name(sig), got, err)
		}
	}
}
