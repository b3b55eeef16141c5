package watch

import (
	"fmt"
	"path"
	"slices"
	"strings"
)

// DefaultExclude returns the patterns excluded when Options.Exclude is nil:
// version-control metadata, Python bytecode, node_modules and editor swap,
// backup and lock files.
func DefaultExclude() []string {
	return []string{
		".git/**", "**/.git/**",
		"**/__pycache__/**", "**/*.pyc",
		"**/node_modules/**",
		"**/*.swp", "**/*~", "**/.#*",
	}
}

// glob is a pattern split into its '/'-separated segments.
type glob []segment

// segment is one segment of a glob, with the common shapes ("name",
// "*.ext", "prefix*", "**") recognized so that matching them is a string
// comparison rather than path.Match.
type segment struct {
	kind segKind
	s    string // the literal, prefix or suffix, or the path.Match pattern
}

type segKind uint8

const (
	segGlob    segKind = iota // path.Match(s, name)
	segLiteral                // name == s
	segPrefix                 // "s*"
	segSuffix                 // "*s"
	segAny                    // "**": zero or more segments
)

func compileSegment(p string) segment {
	const meta = `*?[\`
	switch {
	case p == "**":
		return segment{kind: segAny}
	case !strings.ContainsAny(p, meta):
		return segment{kind: segLiteral, s: p}
	case strings.HasPrefix(p, "*") && !strings.ContainsAny(p[1:], meta):
		return segment{kind: segSuffix, s: p[1:]}
	case strings.HasSuffix(p, "*") && !strings.ContainsAny(p[:len(p)-1], meta):
		return segment{kind: segPrefix, s: p[:len(p)-1]}
	}
	return segment{kind: segGlob, s: p}
}

func (g segment) match(name string) bool {
	switch g.kind {
	case segLiteral:
		return name == g.s
	case segPrefix:
		return strings.HasPrefix(name, g.s)
	case segSuffix:
		return strings.HasSuffix(name, g.s)
	}
	ok, _ := path.Match(g.s, name)
	return ok
}

// compileGlobs checks and splits patterns. A leading "./" or "/" and a
// trailing "/" are dropped: patterns are always relative to a root.
func compileGlobs(patterns []string) ([]glob, error) {
	gs := make([]glob, 0, len(patterns))
	for _, p := range patterns {
		if _, err := path.Match(p, ""); err != nil {
			return nil, fmt.Errorf("glob %q: %w", p, err)
		}
		c := strings.Trim(path.Clean("/"+p), "/")
		if c == "" {
			return nil, fmt.Errorf("glob %q: matches nothing", p)
		}
		var g glob
		for _, s := range strings.Split(c, "/") {
			if s == "**" && len(g) > 0 && g[len(g)-1].kind == segAny {
				continue // "**/**" is "**"
			}
			g = append(g, compileSegment(s))
		}
		gs = append(gs, g)
	}
	return gs, nil
}

// matchAny reports whether rel (a clean relative path with '/' separators,
// not empty) matches one of gs.
func matchAny(gs []glob, rel string) bool {
	for _, g := range gs {
		if matchSegments(g, rel) {
			return true
		}
	}
	return false
}

// matchSegments matches the pattern segments pat against name. name is
// consumed a segment at a time without allocating; "" means no segment is
// left (a real segment is never empty).
func matchSegments(pat []segment, name string) bool {
	for len(pat) > 0 {
		if pat[0].kind == segAny {
			pat = pat[1:]
			if len(pat) == 0 {
				return true
			}
			if !slices.ContainsFunc(pat, func(s segment) bool { return s.kind == segAny }) {
				// No other "**": the rest must match the last len(pat)
				// segments exactly ("**/*.pyc" looks at the base name only).
				name, ok := lastSegments(name, len(pat))
				return ok && matchSegments(pat, name)
			}
			for {
				if matchSegments(pat, name) {
					return true
				}
				if name == "" {
					return false
				}
				_, name = cutSegment(name)
			}
		}
		if name == "" {
			return false
		}
		seg, rest := cutSegment(name)
		if !pat[0].match(seg) {
			return false
		}
		pat, name = pat[1:], rest
	}
	return name == ""
}

// lastSegments returns the last n (at least 1) segments of name, if it
// has that many.
func lastSegments(name string, n int) (string, bool) {
	end := len(name)
	for i := 1; ; i++ {
		k := strings.LastIndexByte(name[:end], '/')
		if k < 0 {
			return name, i == n
		}
		if i == n {
			return name[k+1:], true
		}
		end = k
	}
}

func cutSegment(s string) (seg, rest string) {
	if i := strings.IndexByte(s, '/'); i >= 0 {
		return s[:i], s[i+1:]
	}
	return s, ""
}
