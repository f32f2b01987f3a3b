package compat

import (
	"os"
	"syscall"
)

// openMetadata opens podDir/metadata.json. The pod directory itself is opened
// with O_NOFOLLOW and the file relative to it with openat, so a pod directory
// swapped for a symlink after it was listed is refused too, not followed.
func openMetadata(podDir string) (*os.File, error) {
	dir, err := os.OpenFile(podDir, os.O_RDONLY|syscall.O_DIRECTORY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	// Read-only: a close error loses nothing.
	defer func() { _ = dir.Close() }()
	for {
		fd, err := syscall.Openat(int(dir.Fd()), metadataFileName, metadataOpenFlags, 0)
		// A raw system call is not retried on EINTR the way os.OpenFile is.
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "openat", Path: metadataFileName, Err: err}
		}
		return os.NewFile(uintptr(fd), metadataFileName), nil
	}
}
