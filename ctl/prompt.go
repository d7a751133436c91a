package ctl

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"
)

// readLine reads one line of stdin (without the newline).
func (c *cli) readLine() (string, error) {
	if c.lines == nil {
		c.lines = bufio.NewReader(c.io.Stdin)
	}
	line, err := c.lines.ReadString('\n')
	if err != nil && !(errors.Is(err, io.EOF) && line != "") {
		if errors.Is(err, io.EOF) {
			return "", errors.New("no input (stdin is closed)")
		}
		return "", fmt.Errorf("reading stdin: %w", err)
	}
	return strings.TrimRight(line, "\r\n"), nil
}

// prompt asks for a visible value.
func (c *cli) prompt(label string) (string, error) {
	fmt.Fprint(c.io.Stderr, label)
	s, err := c.readLine()
	if err != nil {
		return "", fmt.Errorf("reading %s: %w", strings.ToLower(strings.TrimSuffix(label, ": ")), err)
	}
	return strings.TrimSpace(s), nil
}

// promptSecret asks for a secret without echo when stdin is a terminal; from
// a pipe it reads one line (for scripts and tests).
func (c *cli) promptSecret(label string) (string, error) {
	if f, ok := c.stdinFile(); ok && isTerminal(f) {
		fmt.Fprint(c.io.Stderr, label)
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(c.io.Stderr)
		if err != nil {
			return "", fmt.Errorf("reading %s: %w", strings.TrimSuffix(label, ": "), err)
		}
		return string(b), nil
	}
	s, err := c.readLine()
	if err != nil {
		return "", fmt.Errorf("reading %s: %w", strings.ToLower(strings.TrimSuffix(label, ": ")), err)
	}
	return s, nil
}

// isTerminal reports whether f is a terminal.
func isTerminal(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }
