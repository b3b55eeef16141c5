package watch

import (
	"bytes"
	"encoding/binary"
	"errors"
	"path/filepath"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// snapshot is what the previous polling pass saw under one root.
type snapshot struct {
	entries map[string]*entry // relative path -> fingerprint
	gen     uint32            // the pass that last ran
	files   int               // non-directories seen by the last pass
}

type entry struct {
	fp  uint64
	gen uint32 // the last pass that saw it
}

// scanner is one polling pass over one root.
type scanner struct {
	w      *Watcher
	r      *root
	s      *snapshot
	report bool   // false for the baseline pass
	key    []byte // relative path of the entry being visited
	link   []byte
	buf    []byte // getdents buffer, reused: a directory is read before its subdirectories
	seen   int    // entries visited by this pass
	files  int
}

// scan runs one polling pass over r: with report set, each path whose
// fingerprint differs from the previous pass (new, changed or gone) is
// handed to hit; without it, the pass only records a baseline.
func (w *Watcher) scan(r *root, report bool) {
	if r.snap == nil {
		r.snap = &snapshot{entries: make(map[string]*entry)}
	}
	sc := scanner{w: w, r: r, s: r.snap, report: report, buf: make([]byte, direntBufSize)}
	sc.s.gen++
	switch {
	case r.trigger != "":
		sc.statPath(r.trigger)
	case r.file:
		sc.statPath("")
	default:
		fd, err := unix.Open(r.real, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err == nil {
			sc.walk(fd)
			unix.Close(fd)
		}
	}
	if sc.seen < len(sc.s.entries) { // something went away
		for k, e := range sc.s.entries {
			if e.gen != sc.s.gen {
				delete(sc.s.entries, k)
				sc.changed(k)
			}
		}
	}
	sc.s.files = sc.files
}

// statPath fingerprints the one path rel under r.real (the root itself
// when rel is empty).
func (sc *scanner) statPath(rel string) {
	p := sc.r.real
	if rel != "" {
		p = filepath.Join(p, rel)
	}
	var st unix.Stat_t
	if unix.Lstat(p, &st) != nil {
		return
	}
	fp := fileFingerprint(&st)
	if st.Mode&unix.S_IFMT == unix.S_IFLNK {
		fp = mixBytes(fp, sc.readlink(unix.AT_FDCWD, p))
	}
	sc.key = append(sc.key[:0], rel...)
	sc.visit(fp)
	sc.files++
}

// walk visits the entries of the directory open at fd, whose relative path
// is sc.key, and then its subdirectories.
func (sc *scanner) walk(fd int) {
	w := sc.w
	base := len(sc.key)
	var subdirs []string
	_ = dirents(fd, sc.buf, func(name []byte, typ uint8, ino uint64) {
		sname := unsafe.String(unsafe.SliceData(name), len(name)) // valid during this call
		if strings.HasPrefix(sname, probePrefix) {
			return
		}
		sc.key = appendRel(sc.key[:base], name)
		rel := unsafe.String(unsafe.SliceData(sc.key), len(sc.key)) // valid until sc.key changes
		if matchAny(w.exclude, rel) {
			return
		}
		var st unix.Stat_t
		statted := false
		if typ == unix.DT_UNKNOWN {
			if unix.Fstatat(fd, sname, &st, unix.AT_SYMLINK_NOFOLLOW) != nil {
				return
			}
			statted, typ = true, direntType(st.Mode)
		}
		if typ == unix.DT_DIR {
			sc.visit(dirFingerprint(ino))
			subdirs = append(subdirs, string(name))
			return
		}
		if len(w.include) > 0 && !matchAny(w.include, rel) {
			return
		}
		if !statted && unix.Fstatat(fd, sname, &st, unix.AT_SYMLINK_NOFOLLOW) != nil {
			return // gone since getdents: the deletion is seen below
		}
		fp := fileFingerprint(&st)
		if st.Mode&unix.S_IFMT == unix.S_IFLNK {
			fp = mixBytes(fp, sc.readlink(fd, sname))
		}
		sc.visit(fp)
		sc.files++
	})
	for _, name := range subdirs {
		cfd, err := unix.Openat(fd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
		if err != nil {
			continue
		}
		sc.key = appendRel(sc.key[:base], []byte(name))
		sc.walk(cfd)
		unix.Close(cfd)
	}
	sc.key = sc.key[:base]
}

func (sc *scanner) readlink(dirfd int, name string) []byte {
	if sc.link == nil {
		sc.link = make([]byte, unix.PathMax)
	}
	n, err := unix.Readlinkat(dirfd, name, sc.link)
	if err != nil || n < 0 {
		return nil
	}
	return sc.link[:n]
}

// visit records the fingerprint of the entry at sc.key.
func (sc *scanner) visit(fp uint64) {
	sc.seen++
	if e, ok := sc.s.entries[string(sc.key)]; ok { // no allocation for the lookup
		e.gen = sc.s.gen
		if e.fp != fp {
			e.fp = fp
			sc.changed(string(sc.key))
		}
		return
	}
	k := string(sc.key)
	sc.s.entries[k] = &entry{fp: fp, gen: sc.s.gen}
	sc.changed(k)
}

func (sc *scanner) changed(rel string) {
	if sc.report && sc.w.wants(sc.r, rel) {
		sc.w.hit(sc.r.abs(rel))
	}
}

func appendRel(key, name []byte) []byte {
	if len(key) > 0 {
		key = append(key, '/')
	}
	return append(key, name...)
}

const direntBufSize = 32 << 10

// dirents calls fn for every entry of the directory open at fd except "."
// and "..". name is only valid during the call. It reads with getdents64
// directly: no sorting, no per-entry allocation.
func dirents(fd int, buf []byte, fn func(name []byte, typ uint8, ino uint64)) error {
	for {
		n, err := unix.ReadDirent(fd, buf)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return err
		}
		if n <= 0 {
			return nil
		}
		b := buf[:n]
		// struct linux_dirent64 { u64 d_ino; s64 d_off; u16 d_reclen; u8 d_type; char d_name[]; }
		for len(b) >= 19 {
			reclen := int(binary.NativeEndian.Uint16(b[16:18]))
			if reclen < 19 || reclen > len(b) {
				return nil
			}
			ino := binary.NativeEndian.Uint64(b[0:8])
			typ := b[18]
			name := b[19:reclen]
			if i := bytes.IndexByte(name, 0); i >= 0 {
				name = name[:i]
			}
			b = b[reclen:]
			if ino == 0 || string(name) == "." || string(name) == ".." {
				continue
			}
			fn(name, typ, ino)
		}
	}
}

func direntType(mode uint32) uint8 {
	switch mode & unix.S_IFMT {
	case unix.S_IFDIR:
		return unix.DT_DIR
	case unix.S_IFLNK:
		return unix.DT_LNK
	case unix.S_IFREG:
		return unix.DT_REG
	}
	return unix.DT_UNKNOWN
}

// fileFingerprint changes when a file is written (mtime, size), touched
// (mtime), replaced by a rename (inode), chmod'ed or chown'ed (ctime) or
// changes type.
func fileFingerprint(st *unix.Stat_t) uint64 {
	h := mix(0, uint64(st.Mtim.Sec))
	h = mix(h, uint64(st.Mtim.Nsec))
	h = mix(h, uint64(st.Ctim.Sec))
	h = mix(h, uint64(st.Ctim.Nsec))
	h = mix(h, uint64(st.Size))
	h = mix(h, st.Ino)
	return mix(h, uint64(st.Mode))
}

// dirFingerprint leaves out a directory's times: they change whenever an
// entry is added or removed, excluded ones too.
func dirFingerprint(ino uint64) uint64 { return mix(mix(0, ino), unix.S_IFDIR) }

func mix(h, v uint64) uint64 {
	h ^= v
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h + 0x9e3779b97f4a7c15
}

func mixBytes(h uint64, b []byte) uint64 {
	const prime = 1099511628211
	f := uint64(14695981039346656037)
	for _, c := range b {
		f = (f ^ uint64(c)) * prime
	}
	return mix(h, f)
}
