//go:build aix || darwin || dragonfly || freebsd || linux || netbsd || openbsd || solaris || zos

package main

import (
	"os"

	"golang.org/x/sys/unix"
)

// echoOff turns terminal echo off (keeping line editing and Ctrl-C) before
// the prompt is shown. term.ReadPassword does the same, but only once it
// runs: a key typed or pasted right after the prompt would otherwise be
// echoed. The caller restores the terminal with term.Restore.
func echoOff(fd int) error {
	t, err := unix.IoctlGetTermios(fd, ioctlReadTermios)
	if err != nil {
		return err
	}
	t.Lflag &^= unix.ECHO
	t.Lflag |= unix.ICANON | unix.ISIG
	t.Iflag |= unix.ICRNL
	return unix.IoctlSetTermios(fd, ioctlWriteTermios, t)
}

// readNoEcho reads one line from the terminal, whose echo echoOff has turned
// off; the kernel's line discipline still handles erase and kill. It never
// changes the terminal itself: term.ReadPassword would, from the reading
// goroutine, and could turn echo off again after a Ctrl-C had restored it.
func readNoEcho(f *os.File) ([]byte, error) { return readLine(f) }
