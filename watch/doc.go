// Package watch tells rotini that the code it serves has changed on disk.
//
// Invariant: OnChange is called at most once per debounce window — two
// calls are always at least Debounce apart — and each call reports one
// burst of changes, at most MaxWait after the first change of that burst.
// It is called from a single goroutine of the Watcher, never concurrently
// with itself, never before Start and never after Close has returned, and
// only for paths that pass the filters (trigger, include, exclude). The
// watcher never kills, signals or reloads anything itself: OnChange is its
// only output, and what to do with it is the caller's business (rotini
// sends it down the same path as a HUP).
//
// # Sources of changes
//
// Each root is watched in one of two ways, chosen at New:
//
//   - inotify (via fsnotify): one watch per directory, added recursively.
//     A directory that appears later is watched as soon as its creation is
//     seen, and then listed, so files written into it before its watch
//     existed are not missed. A directory that is renamed away loses its
//     watches (and its subdirectories' ones) before its new name is added.
//   - polling: every PollEvery the tree is walked (getdents + fstatat, no
//     sorting) and each entry's fingerprint — mtime, ctime, size, inode,
//     type and, for symlinks, the target — is compared with the previous
//     pass. Directories are fingerprinted by inode and type only, so an
//     excluded file appearing in a directory does not change it.
//
// Poll "interval" polls every root. Poll "auto" (the default) polls a root
// when its file system is one where inotify does not see changes made by
// another machine or kernel (9p, virtiofs and other FUSE mounts such as
// Docker Desktop's bind mounts, NFS, CIFS/SMB, Ceph, AFS, VirtualBox and
// Parallels shared folders, …; see remoteFS), or when the self-test fails:
// a file .rotini-probe-<random> is created in the root (when writable) and
// an inotify event for it must arrive within a second. Poll "off" never
// polls; it only warns. When inotify runs out of watches
// (fs.inotify.max_user_watches, ENOSPC) or instances
// (fs.inotify.max_user_instances, EMFILE), the watcher warns, naming the
// sysctl, and polls everything instead — at set-up or later, never failing.
//
// # Filters
//
// Paths are matched relative to their root, with '/' separators. A glob is
// split at '/'; a segment "**" matches zero or more path segments, any
// other segment is matched against one path segment with path.Match (so
// "*" does not cross '/'). A pattern is anchored at the root: "*.py"
// matches "app.py" but not "pkg/app.py"; write "**/*.py" for both.
// "build/**" matches "build" itself and everything below it. A path is
// excluded when it matches an Exclude pattern; an excluded directory is
// neither watched nor walked, so everything below it is excluded too.
// With a nil Exclude the defaults apply (see DefaultExclude); an empty
// non-nil Exclude excludes nothing. When Include is non-empty, only paths
// matching one of its patterns count; directories are still walked.
// Probe files are always ignored.
//
// With Trigger set, only changes of that one file count (Passenger's
// `touch tmp/restart.txt`), and only the directories leading to it are
// watched; Include and Exclude do not apply. A relative Trigger is taken
// relative to the first root.
//
// # Symlinks
//
// Symlinks inside a root are not followed; replacing one
// (`ln -s releases/42 current.tmp && mv -T current.tmp current`) is a
// change like any other, and the events of such a switch fall into one
// burst. A root that is itself a symlink (as its last component) is
// watched where it resolves to, and its parent directory is watched for
// the link being re-pointed (polled roots re-resolve it on every pass);
// re-pointing is one change, reported as the root's path, after which the
// new target is watched and the old one no longer is. Paths in a Change
// are always under the root as configured, not the resolved target.
package watch
