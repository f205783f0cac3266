//go:build !(aix || darwin || dragonfly || freebsd || linux || netbsd || openbsd || solaris || zos)

package main

import (
	"os"

	"golang.org/x/term"
)

// echoOff does nothing where termios is not available; readNoEcho turns
// echo off itself.
func echoOff(int) error { return nil }

// readNoEcho reads one line without echo.
func readNoEcho(f *os.File) ([]byte, error) { return term.ReadPassword(int(f.Fd())) }
