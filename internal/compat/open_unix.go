//go:build unix

package compat

import (
	"cmp"
	"os"
	"path/filepath"
	"slices"
	"syscall"
)

// fileKey identifies one version of a metadata file: a rewrite in place
// changes its size or times, a rename over it changes its inode. The index
// re-reads a pod only when the key it sees differs from the one it read.
type fileKey struct {
	dev, ino     uint64
	size         int64
	mtime, ctime int64
	mode         uint32
}

// podsHandle is the pods directory a scan reads pods in: its path and, on
// Linux, a descriptor of it that each pod's file is opened relative to (with
// openat2, so that the kernel walks two names instead of the whole path);
// fd is -1 where pods are opened by path.
type podsHandle struct {
	path string
	fd   int
}

// byPath is the handle of the pods directory at path that opens pods by
// path (for a few pods: not worth a descriptor).
func byPath(path string) podsHandle { return podsHandle{path: path, fd: -1} }

// listPods opens the pods directory at path and lists it, sorted by name.
// The handle it returns holds the directory open until done is called.
func listPods(path string) (pods podsHandle, ents []os.DirEntry, done func(), err error) {
	f, err := os.Open(path)
	if err != nil {
		return podsHandle{}, nil, nil, err
	}
	ents, err = f.ReadDir(-1)
	if err != nil {
		_ = f.Close() // read-only: nothing is lost
		return podsHandle{}, nil, nil, err
	}
	slices.SortFunc(ents, func(a, b os.DirEntry) int { return cmp.Compare(a.Name(), b.Name()) })
	return podsHandle{path: path, fd: dirFD(f)}, ents, func() { _ = f.Close() }, nil
}

// podDir is the path of pod name's directory.
func (p podsHandle) podDir(name string) string { return filepath.Join(p.path, name) }

// metadataOpenFlags never follow a final symlink and never wait for a writer
// on a FIFO.
const metadataOpenFlags = syscall.O_RDONLY | syscall.O_NOFOLLOW | syscall.O_NONBLOCK | syscall.O_CLOEXEC
