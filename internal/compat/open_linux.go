package compat

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// readMetadataFile reads podDir/metadata.json and returns the key of the file
// it read. The Lstat rejects a symlink, FIFO or device without opening it,
// and a file with more than one hard link: like a symlink, a second link may
// be a name for a file outside the data dir that whoever writes the store
// could not otherwise make this server show (the fstat checks it again).
// The pod directory is then opened with O_NOFOLLOW and the file relative to it
// with openat and O_NOFOLLOW|O_NONBLOCK, and an fstat refuses anything but a
// regular file swapped in between: a read never follows a link and never
// blocks. At most 1 MiB + 1 byte is read: one byte more than the limit is
// enough to tell that the file is over it. A file whose size or times change
// while it is read was caught mid-write: it is reported invalid
// ("changed_during_read"), never decoded.
//
// It uses the system calls directly: the index reads every pod at start-up,
// and os.File's poller registration costs as much again as the read.
func readMetadataFile(podDir string) ([]byte, fileKey, *podProblem) {
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
	fd, err := openMetadataFD(podDir)
	if err != nil {
		return nil, keyOf(fi), unreadable("open_failed", err)
	}
	// Read-only: a close error loses nothing.
	defer func() { _ = syscall.Close(fd) }()
	var st syscall.Stat_t
	if err := fstat(fd, &st); err != nil {
		return nil, keyOf(fi), unreadable("stat_failed", err)
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFREG {
		return nil, keyOf(fi), unreadable("not_regular", nil)
	}
	if st.Nlink > 1 {
		return nil, keyOfStat(&st), unreadable("hard_link", nil)
	}
	key := keyOfStat(&st)
	size := min(max(st.Size, 0), maxMetadataBytes) + 1
	data := make([]byte, size)
	n := 0
	for n < len(data) {
		m, err := syscall.Read(fd, data[n:])
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return nil, key, unreadable("read_failed", &os.PathError{Op: "read", Path: metadataFileName, Err: err})
		}
		if m == 0 {
			break
		}
		n += m
		if n < len(data) {
			// A short read of a regular file is its end: saves the read
			// that would return 0. A writer racing it is caught by the
			// fstat below.
			break
		}
		if n <= maxMetadataBytes {
			// The file grew since the fstat: read on, up to the limit.
			data = append(data, make([]byte, min(len(data), maxMetadataBytes+1-len(data)))...)
		}
	}
	data = data[:n]
	if len(data) > maxMetadataBytes {
		return nil, key, invalid("oversize", nil)
	}
	var after syscall.Stat_t
	if err := fstat(fd, &after); err != nil || keyOfStat(&after) != key {
		return nil, fileKey{}, invalid("changed_during_read", err)
	}
	return data, key, nil
}

// openMetadataFD opens podDir/metadata.json. The pod directory itself is
// opened with O_NOFOLLOW and the file relative to it with openat, so a pod
// directory swapped for a symlink after it was listed is refused too, not
// followed.
func openMetadataFD(podDir string) (int, error) {
	dir, err := retry(func() (int, error) {
		return syscall.Open(podDir, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0)
	})
	if err != nil {
		return -1, &os.PathError{Op: "open", Path: podDir, Err: err}
	}
	// Read-only: a close error loses nothing.
	defer func() { _ = syscall.Close(dir) }()
	fd, err := retry(func() (int, error) { return syscall.Openat(dir, metadataFileName, metadataOpenFlags, 0) })
	if err != nil {
		return -1, &os.PathError{Op: "openat", Path: metadataFileName, Err: err}
	}
	return fd, nil
}

// retry repeats a raw system call interrupted by a signal (os.OpenFile does
// this itself; the raw calls do not).
func retry(call func() (int, error)) (int, error) {
	for {
		fd, err := call()
		if err != syscall.EINTR { //nolint:errorlint // raw syscall errors are bare Errno values
			return fd, err
		}
	}
}

func fstat(fd int, st *syscall.Stat_t) error {
	for {
		err := syscall.Fstat(fd, st)
		if err != syscall.EINTR { //nolint:errorlint // raw syscall errors are bare Errno values
			return err
		}
	}
}

// keyOf is the key of fi (zero when fi is nil).
func keyOf(fi fs.FileInfo) fileKey {
	if fi == nil {
		return fileKey{}
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return keyOfStat(st)
	}
	return fileKey{size: fi.Size(), mtime: fi.ModTime().UnixNano(), mode: uint32(fi.Mode())}
}

// keyOfStat is the key of a raw stat result.
func keyOfStat(st *syscall.Stat_t) fileKey {
	return fileKey{
		dev: st.Dev, ino: st.Ino, size: st.Size, //nolint:unconvert // the types differ between architectures
		mtime: st.Mtim.Nano(), ctime: st.Ctim.Nano(),
		mode: st.Mode,
	}
}
