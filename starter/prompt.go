package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/term"
)

// maxSecretLine bounds a secret read from standard input.
const maxSecretLine = 1024

// isTerminal reports whether f is a terminal.
func isTerminal(f *os.File) bool { return f != nil && term.IsTerminal(int(f.Fd())) }

// readHidden prompts on out and reads one line from the terminal f without
// echo. Echo goes off before the prompt is shown, so nothing typed or pasted
// early is echoed, and only this goroutine changes the terminal, so the
// restore on return (Ctrl-C included, which returns errInterrupted) is the
// last word. The caller wipes the result.
func readHidden(ctx context.Context, f *os.File, out io.Writer, prompt string) ([]byte, error) {
	fd := int(f.Fd())
	state, err := term.GetState(fd)
	if err != nil {
		return nil, fmt.Errorf("read terminal state: %w", err)
	}
	if err := echoOff(fd); err != nil {
		return nil, fmt.Errorf("turn terminal echo off: %w", err)
	}
	defer term.Restore(fd, state)
	fmt.Fprint(out, prompt)
	type result struct {
		b   []byte
		err error
	}
	ch := make(chan result, 1)
	go func() {
		b, err := readNoEcho(f)
		ch <- result{b, err}
	}()
	select {
	case r := <-ch:
		fmt.Fprintln(out)
		if r.err != nil {
			clear(r.b)
			return nil, fmt.Errorf("read from terminal: %w", r.err)
		}
		return r.b, nil
	case <-ctx.Done():
		// The reader goroutine stays blocked; the process is about to exit.
		// The deferred Restore turns echo back on.
		fmt.Fprintln(out)
		return nil, errInterrupted
	}
}

// readLine reads one line from r, a byte at a time so nothing past the line
// is consumed or buffered, without the line ending. The caller wipes it.
func readLine(r io.Reader) ([]byte, error) {
	buf := make([]byte, 0, 64)
	var one [1]byte
	for {
		n, err := r.Read(one[:])
		if n == 1 {
			if one[0] == '\n' {
				break
			}
			if len(buf) == maxSecretLine {
				clear(buf)
				return nil, usagef("the line on standard input is longer than %d bytes", maxSecretLine)
			}
			buf = append(buf, one[0])
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			clear(buf)
			return nil, fmt.Errorf("read standard input: %w", err)
		}
	}
	one[0] = 0
	if n := len(buf); n > 0 && buf[n-1] == '\r' {
		buf[n-1] = 0
		buf = buf[:n-1]
	}
	return buf, nil
}

// errNoTerminal refuses to read a PIN when there is nobody to ask.
var errNoTerminal = usagef("no terminal to ask the PIN on; pass --pin-stdin to read it from standard input")

// readPIN gets the customer's PIN: one line of standard input with
// --pin-stdin, else a no-echo prompt on the terminal that is standard input.
// It is never taken from flags, arguments or the environment.
func (a *app) readPIN(ctx context.Context, fromStdin bool, prompt string) ([]byte, error) {
	if a.getenv("VIGIL_PIN") != "" {
		fmt.Fprintln(a.stderr, "starter: warning: VIGIL_PIN is ignored: the PIN is never read from the environment; unset it")
	}
	return a.readSecret(ctx, fromStdin, prompt, "PIN")
}

// readSecret reads one secret (what names it in errors) without echo on
// the terminal, or as the next line of standard input when fromStdin.
func (a *app) readSecret(ctx context.Context, fromStdin bool, prompt, what string) ([]byte, error) {
	var pin []byte
	var err error
	switch {
	case fromStdin:
		pin, err = readLine(a.stdin)
	case isTerminal(a.stdin):
		pin, err = readHidden(ctx, a.stdin, a.stderr, prompt)
	default:
		return nil, errNoTerminal
	}
	if err != nil {
		return nil, err
	}
	if len(pin) == 0 {
		return nil, usagef("no %s entered; nothing was sent", what)
	}
	return pin, nil
}
