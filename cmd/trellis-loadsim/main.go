// Command trellis-loadsim simulates N edges in one process against a
// trellis-manage and reports the registration rate, manage's memory per
// connected device and how long a configuration change takes to reach all
// N devices (bench/loadsim.md).
//
// By default it starts its own manage as a child process (itself, re-run
// in manage mode, on a fresh SQLite database in a temporary directory), so
// the child's resident memory is manage's alone:
//
//	trellis-loadsim --n 1000
//	trellis-loadsim --n 10000 --db postgres://postgres@127.0.0.1/loadsim
//
// Every simulated edge registers and connects from its own loopback
// address (127.1.x.y), as real edges come from their own addresses.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// childEnv marks the re-run of this binary as the manage child.
const childEnv = "TRELLIS_LOADSIM_MANAGE"

func main() {
	if os.Getenv(childEnv) == "1" {
		os.Exit(runManage(os.Args[1:]))
	}
	cfg, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "trellis-loadsim:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "trellis-loadsim:", err)
		os.Exit(1)
	}
}
