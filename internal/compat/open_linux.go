package compat

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// readMetadataFile reads name/metadata.json under pods and returns the key
// of the file it read. The lstat rejects a symlink, FIFO or device without
// opening it, and a file with more than one hard link: like a symlink, a
// second link may be a name for a file outside the data dir that whoever
// writes the store could not otherwise make this server show (the fstat
// checks it again). The file is then opened relative to pods/ with openat2,
// RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS and O_NOFOLLOW|O_NONBLOCK (a pod
// directory or file swapped for a symlink after the listing is refused, not
// followed; without openat2 the pod directory is opened with O_NOFOLLOW and
// the file relative to it), and an fstat refuses anything but a regular file
// swapped in between: a read never follows a link and never blocks. At most
// 1 MiB + 1 byte is read: one byte more than the limit is enough to tell
// that the file is over it. A file whose size or times change while it is
// read was caught mid-write: it is reported invalid ("changed_during_read"),
// never decoded.
//
// It uses the system calls directly: the index reads every pod at start-up,
// and os.File's poller registration costs as much again as the read.
func readMetadataFile(pods podsHandle, name string) ([]byte, fileKey, *podProblem) {
	var lst syscall.Stat_t
	err := lstatMetadata(pods, name, &lst)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fileKey{}, unreadable("missing", err)
	case err != nil:
		return nil, fileKey{}, unreadable("stat_failed", err)
	case lst.Mode&syscall.S_IFMT != syscall.S_IFREG:
		return nil, keyOfStat(&lst), unreadable("not_regular", nil)
	case lst.Nlink > 1:
		return nil, keyOfStat(&lst), unreadable("hard_link", nil)
	}
	fd, err := openMetadataFD(pods, name)
	if err != nil {
		return nil, keyOfStat(&lst), unreadable("open_failed", err)
	}
	// Read-only: a close error loses nothing.
	defer func() { _ = syscall.Close(fd) }()
	var st syscall.Stat_t
	if err := fstat(fd, &st); err != nil {
		return nil, keyOfStat(&lst), unreadable("stat_failed", err)
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFREG {
		return nil, keyOfStat(&lst), unreadable("not_regular", nil)
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

// lstatMetadata stats name/metadata.json under pods without following a
// final symlink: relative to pods' descriptor when it has one.
func lstatMetadata(pods podsHandle, name string, st *syscall.Stat_t) error {
	for {
		var err error
		if pods.fd >= 0 {
			var ust unix.Stat_t
			err = unix.Fstatat(pods.fd, name+"/"+metadataFileName, &ust, unix.AT_SYMLINK_NOFOLLOW)
			// What a key and the checks read; the rest stays zero.
			st.Dev, st.Ino, st.Nlink, st.Mode, st.Size = ust.Dev, ust.Ino, ust.Nlink, ust.Mode, ust.Size
			st.Mtim = syscall.Timespec{Sec: ust.Mtim.Sec, Nsec: ust.Mtim.Nsec}
			st.Ctim = syscall.Timespec{Sec: ust.Ctim.Sec, Nsec: ust.Ctim.Nsec}
		} else {
			err = syscall.Lstat(filepath.Join(pods.podDir(name), metadataFileName), st)
		}
		if err != syscall.EINTR { //nolint:errorlint // raw syscall errors are bare Errno values
			return err
		}
	}
}

// statMetadata is the key of pod name's metadata.json as it is now, without
// opening it (zero when it cannot be stat'ed).
func statMetadata(pods podsHandle, name string) fileKey {
	var st syscall.Stat_t
	if err := lstatMetadata(pods, name, &st); err != nil {
		return fileKey{}
	}
	return keyOfStat(&st)
}

// dirFD is f's descriptor, which the scan opens pods relative to.
func dirFD(f *os.File) int { return int(f.Fd()) } //nolint:gosec // a descriptor fits an int

// noOpenat2 is set once openat2 turned out unavailable (a kernel before
// 5.6, or a sandbox that filters it): the pod directory is then opened first.
var noOpenat2 atomic.Bool

// openMetadataFD opens name/metadata.json under pods. With a descriptor of
// pods/ it is one openat2 that refuses any symlink on the way and anything
// outside pods/; otherwise (or without openat2) the pod directory itself is
// opened with O_NOFOLLOW and the file relative to it with openat, so a pod
// directory swapped for a symlink after it was listed is refused too, not
// followed.
func openMetadataFD(pods podsHandle, name string) (int, error) {
	if pods.fd >= 0 && !noOpenat2.Load() {
		how := unix.OpenHow{
			Flags:   uint64(metadataOpenFlags | syscall.O_NOCTTY),
			Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
		}
		fd, err := retry(func() (int, error) { return unix.Openat2(pods.fd, name+"/"+metadataFileName, &how) })
		switch {
		case err == nil:
			return fd, nil
		case errors.Is(err, unix.ENOSYS), errors.Is(err, unix.EPERM):
			// No openat2 here: ENOSYS, or EPERM from a seccomp filter that
			// does not know it (older container runtimes). The open below
			// decides; if it succeeds where openat2 was refused, openat2 is
			// not tried again.
			fd, ferr := openMetadataAt(pods.podDir(name))
			if ferr == nil {
				noOpenat2.Store(true)
			}
			return fd, ferr
		default:
			return -1, &os.PathError{Op: "openat2", Path: metadataFileName, Err: err}
		}
	}
	return openMetadataAt(pods.podDir(name))
}

// openMetadataAt opens podDir/metadata.json: the pod directory with
// O_NOFOLLOW, then the file relative to it with openat.
func openMetadataAt(podDir string) (int, error) {
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

// keyOfStat is the key of a raw stat result.
func keyOfStat(st *syscall.Stat_t) fileKey {
	return fileKey{
		dev: st.Dev, ino: st.Ino, size: st.Size, //nolint:unconvert // the types differ between architectures
		mtime: st.Mtim.Nano(), ctime: st.Ctim.Nano(),
		mode: st.Mode,
	}
}
