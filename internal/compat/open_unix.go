//go:build unix

package compat

import (
	"io/fs"
	"os"
	"path/filepath"
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

// statMetadata is the key of podDir/metadata.json as it is now, without
// opening it (zero when it cannot be stat'ed).
func statMetadata(podDir string) fileKey {
	fi, err := os.Lstat(filepath.Join(podDir, metadataFileName))
	if err != nil {
		return fileKey{}
	}
	return keyOf(fi)
}

// metadataOpenFlags never follow a final symlink and never wait for a writer
// on a FIFO.
const metadataOpenFlags = syscall.O_RDONLY | syscall.O_NOFOLLOW | syscall.O_NONBLOCK | syscall.O_CLOEXEC

// linkCount is the number of hard links of fi (1 when unknown).
func linkCount(fi fs.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Nlink) //nolint:unconvert // the type differs between systems
	}
	return 1
}
