//go:build unix

package compat

import (
	"errors"
	"io"
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
	mode         fs.FileMode
}

// keyOf is the key of fi (zero when fi is nil).
func keyOf(fi fs.FileInfo) fileKey {
	if fi == nil {
		return fileKey{}
	}
	k := fileKey{size: fi.Size(), mtime: fi.ModTime().UnixNano(), mode: fi.Mode()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		k.dev, k.ino = uint64(st.Dev), st.Ino //nolint:unconvert // Dev is not uint64 on every unix
		k.ctime = st.Ctim.Nano()
	}
	return k
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

// readMetadataFile reads podDir/metadata.json and returns the key of the file
// it read. The Lstat rejects a symlink, FIFO or device without opening it;
// O_NOFOLLOW, O_NONBLOCK and the fstat after opening refuse one swapped in
// between, so a read never follows a link and never blocks. At most 1 MiB + 1
// byte is read: one byte more than the limit is enough to tell that the file
// is over it. A file whose size or times change while it is read was caught
// mid-write: it is reported invalid ("changed_during_read"), never decoded.
func readMetadataFile(podDir string) ([]byte, fileKey, *podProblem) {
	fi, err := os.Lstat(filepath.Join(podDir, metadataFileName))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fileKey{}, unreadable("missing", err)
	case err != nil:
		return nil, fileKey{}, unreadable("stat_failed", err)
	case !fi.Mode().IsRegular():
		return nil, keyOf(fi), unreadable("not_regular", nil)
	}
	f, err := openMetadata(podDir)
	if err != nil {
		return nil, keyOf(fi), unreadable("open_failed", err)
	}
	// Read-only: a close error loses nothing.
	defer func() { _ = f.Close() }()
	st, err := f.Stat()
	if err != nil {
		return nil, keyOf(fi), unreadable("stat_failed", err)
	} else if !st.Mode().IsRegular() {
		return nil, keyOf(st), unreadable("not_regular", nil)
	}
	key := keyOf(st)
	data, err := io.ReadAll(io.LimitReader(f, maxMetadataBytes+1))
	if err != nil {
		return nil, key, unreadable("read_failed", err)
	}
	if len(data) > maxMetadataBytes {
		return nil, key, invalid("oversize", nil)
	}
	if after, err := f.Stat(); err != nil || keyOf(after) != key {
		return nil, fileKey{}, invalid("changed_during_read", err)
	}
	return data, key, nil
}

// metadataOpenFlags never follow a final symlink and never wait for a writer
// on a FIFO.
const metadataOpenFlags = syscall.O_RDONLY | syscall.O_NOFOLLOW | syscall.O_NONBLOCK | syscall.O_CLOEXEC
