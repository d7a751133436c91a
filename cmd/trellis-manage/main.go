// Command trellis-manage is the Trellis controller: REST API, storage, the
// device registration and channel, and a STUN server for the edges' NAT
// traversal. Run with no flags it keeps its state in ./trellis-data
// (SQLite), serves HTTPS on :8443 and STUN on UDP 3478 and 3479; see --help.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/trellis-sdwan/trellis/manage/server"
)

func main() {
	cfg, err := server.ParseFlags("trellis-manage", os.Args[1:], os.Getenv, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "trellis-manage:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	srv, err := server.New(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "trellis-manage:", err)
		os.Exit(1)
	}
	if err := srv.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "trellis-manage:", err)
		os.Exit(1)
	}
}
