// Command trellisctl is the command-line client of the Trellis controller.
// See docs/trellisctl.md; the commands live in package ctl.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/trellis-sdwan/trellis/ctl"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := ctl.Main(ctx, os.Args[1:], ctl.IO{
		Stdin:  os.Stdin,
		Stdout: os.Stdout,
		Stderr: os.Stderr,
		Getenv: os.Getenv,
	})
	stop()
	os.Exit(code)
}
