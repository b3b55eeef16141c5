// Package signame converts between signal names and numbers, the way users
// write them on a command line or in a config file.
//
// Parse accepts a name with or without the SIG prefix in any case ("TERM",
// "SIGTERM", "term"), a decimal number from 1 to 64 ("15"), and the
// real-time signals as kill(1) prints them ("RTMIN", "RTMIN+3", "RTMAX-1").
// Name is its inverse for display: the name without the SIG prefix, or the
// number when the signal has no name. Parse(Name(s)) == s for every signal
// from 1 to 64.
//
// Numbers and names are those of the platform (golang.org/x/sys/unix), so a
// name means the same signal rotini will send. The real-time range follows
// glibc, which reserves the kernel's first two real-time signals: RTMIN is
// 34 and RTMAX is 64.
package signame

import (
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

const (
	// Max is the highest signal number on Linux.
	Max = 64
	// RTMin and RTMax bound the real-time signals available to programs
	// (glibc's SIGRTMIN and SIGRTMAX).
	RTMin unix.Signal = 34
	RTMax unix.Signal = 64
)

// aliases are the other names C and kill(1) accept for a numbered signal.
var aliases = map[string]string{"IOT": "ABRT", "POLL": "IO", "CLD": "CHLD"}

// Parse returns the signal that s names. See the package doc for the forms
// accepted. The error lists the valid names.
func Parse(s string) (unix.Signal, error) {
	t := strings.ToUpper(strings.TrimSpace(s))
	if t == "" {
		return 0, fmt.Errorf("empty signal name: %s", want())
	}
	if n, err := strconv.Atoi(t); err == nil {
		if n < 1 || n > Max {
			return 0, fmt.Errorf("signal number %d is out of range: %s", n, want())
		}
		return unix.Signal(n), nil
	}
	t = strings.TrimPrefix(t, "SIG")
	if a, ok := aliases[t]; ok {
		t = a
	}
	if sig := unix.SignalNum("SIG" + t); sig != 0 {
		return sig, nil
	}
	if sig, ok := parseRT(t); ok {
		return sig, nil
	}
	return 0, fmt.Errorf("unknown signal %q: %s", s, want())
}

// parseRT parses RTMIN, RTMIN+n, RTMAX and RTMAX-n.
func parseRT(t string) (unix.Signal, bool) {
	base, sign := RTMin, 1
	rest, ok := strings.CutPrefix(t, "RTMIN")
	if !ok {
		base, sign = RTMax, -1
		if rest, ok = strings.CutPrefix(t, "RTMAX"); !ok {
			return 0, false
		}
	}
	if rest == "" {
		return base, true
	}
	op := "+"
	if sign < 0 {
		op = "-"
	}
	num, ok := strings.CutPrefix(rest, op)
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(num)
	if err != nil || n < 0 || n > int(RTMax-RTMin) {
		return 0, false
	}
	return base + unix.Signal(sign*n), true
}

// Name returns the name of sig without the SIG prefix ("TERM"), the
// kill(1) name of a real-time signal ("RTMIN+2"), or its number ("32") when
// it has no name.
func Name(sig unix.Signal) string {
	switch {
	case sig == RTMin:
		return "RTMIN"
	case sig == RTMax:
		return "RTMAX"
	case sig > RTMin && sig <= RTMin+(RTMax-RTMin)/2:
		return fmt.Sprintf("RTMIN+%d", sig-RTMin)
	case sig > RTMin && sig < RTMax:
		return fmt.Sprintf("RTMAX-%d", RTMax-sig)
	}
	if n := unix.SignalName(sig); n != "" {
		return strings.TrimPrefix(n, "SIG")
	}
	return strconv.Itoa(int(sig))
}

// Names returns the names of the numbered (non-real-time) signals, in
// signal-number order, without the SIG prefix.
func Names() []string {
	var names []string
	for sig := unix.Signal(1); sig < RTMin; sig++ {
		if n := unix.SignalName(sig); n != "" {
			names = append(names, strings.TrimPrefix(n, "SIG"))
		}
	}
	return names
}

func want() string {
	return "want a name (" + strings.Join(Names(), ", ") +
		", RTMIN+n, RTMAX-n), with or without SIG, or a number from 1 to 64"
}
