package pid1

import (
	"errors"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/rotini-dev/rotini/signame"
)

// A rewrite (Options.Rewrite) maps a signal rotini would forward to the
// one it forwards instead, or to 0, which drops it. The command line
// writes one as --rewrite FROM:TO, a config file as
// signals { rewrite = { FROM = "TO" } }; both parse TO here.

// ParseRewriteTarget parses the TO of a rewrite: a signal, by name or
// number as signame.Parse takes it, or "0", which drops the signal.
func ParseRewriteTarget(s string) (unix.Signal, error) {
	if strings.TrimSpace(s) == "0" {
		return 0, nil
	}
	return signame.Parse(s)
}

// ParseRewrite parses a --rewrite FROM:TO.
func ParseRewrite(spec string) (from, to unix.Signal, err error) {
	f, t, ok := strings.Cut(spec, ":")
	if !ok {
		return 0, 0, errors.New("want FROM:TO, e.g. TERM:QUIT or 15:3 (TO=0 drops)")
	}
	if from, err = signame.Parse(f); err != nil {
		return 0, 0, err
	}
	if to, err = ParseRewriteTarget(t); err != nil {
		return 0, 0, err
	}
	return from, to, nil
}
