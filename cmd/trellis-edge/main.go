// Command trellis-edge is the Trellis site router. `trellis-edge dataplane`
// runs the tunnel data plane standalone from a JSON file (see
// edge/dataplane/README.md); every other subcommand (run, register, status,
// show, reset) is the agent's command tree in package edge/cli.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/trellis-sdwan/trellis/edge/cli"
	"github.com/trellis-sdwan/trellis/edge/dataplane/standalone"
)

func main() {
	if len(os.Args) < 2 || os.Args[1] != "dataplane" {
		// Everything but the standalone data plane: the agent's command tree.
		os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr))
	}
	fs := flag.NewFlagSet("dataplane", flag.ExitOnError)
	cfg := fs.String("config", "", "data plane JSON configuration file (required)")
	status := fs.String("status-addr", "", "address for the local status endpoint (/status, /metrics, /healthz), e.g. 127.0.0.1:9477 or unix:/run/trellis-dataplane.sock")
	level := fs.String("log-level", "info", "log level: debug, info, warn or error")
	_ = fs.Parse(os.Args[2:])
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(*level)); err != nil || *cfg == "" {
		fmt.Fprintln(os.Stderr, "trellis-edge dataplane: --config FILE is required and --log-level must be debug, info, warn or error")
		os.Exit(2)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lv}))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := standalone.Run(ctx, standalone.Options{ConfigPath: *cfg, StatusAddr: *status, Logger: log}); err != nil {
		log.Error("data plane failed", "err", err)
		os.Exit(1)
	}
}
