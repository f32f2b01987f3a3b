//go:build unix && !linux

package compat

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// openMetadata opens podDir/metadata.json without following a final symlink.
// Only Linux also pins the pod directory with openat; elsewhere the Lstat of
// the listing is the check for the directory.
func openMetadata(podDir string) (*os.File, error) {
	return os.OpenFile(filepath.Join(podDir, metadataFileName), metadataOpenFlags, 0)
}

// readMetadataFile reads podDir/metadata.json and returns the key of the file
// it read. The Lstat rejects a symlink, FIFO or device without opening it,
// and a file with more than one hard link (see the Linux version);
// O_NOFOLLOW, O_NONBLOCK and the fstat after opening refuse one swapped in
// between, so a read never follows a link and never blocks. At most 1 MiB + 1
// byte is read: one byte more than the limit is enough to tell that the file
// is over it. A file whose size or times change while it is read was caught
// mid-write: it is reported invalid ("changed_during_read"), never decoded.
func readMetadataFile(pods podsHandle, name string) ([]byte, fileKey, *podProblem) {
	podDir := pods.podDir(name)
	fi, err := os.Lstat(filepath.Join(podDir, metadataFileName))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fileKey{}, unreadable("missing", err)
	case err != nil:
		return nil, fileKey{}, unreadable("stat_failed", err)
	case !fi.Mode().IsRegular():
		return nil, keyOf(fi), unreadable("not_regular", nil)
	case linkCount(fi) > 1:
		return nil, keyOf(fi), unreadable("hard_link", nil)
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
	} else if linkCount(st) > 1 {
		return nil, keyOf(st), unreadable("hard_link", nil)
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

// statMetadata is the key of pod name's metadata.json as it is now, without
// opening it (zero when it cannot be stat'ed).
func statMetadata(pods podsHandle, name string) fileKey {
	fi, err := os.Lstat(filepath.Join(pods.podDir(name), metadataFileName))
	if err != nil {
		return fileKey{}
	}
	return keyOf(fi)
}

// dirFD is -1: off Linux pods are opened by path.
func dirFD(*os.File) int { return -1 }

// keyOf is the key of fi (zero when fi is nil). Off Linux it leaves out the
// inode and ctime.
func keyOf(fi fs.FileInfo) fileKey {
	if fi == nil {
		return fileKey{}
	}
	return fileKey{size: fi.Size(), mtime: fi.ModTime().UnixNano(), mode: uint32(fi.Mode())}
}

// linkCount is the number of hard links of fi (1 when unknown).
func linkCount(fi fs.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Nlink) //nolint:unconvert // the type differs between systems
	}
	return 1
}
