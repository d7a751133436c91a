// Command tbedge runs the data plane exactly as `trellis-edge dataplane`
// does (same standalone package, same flags) and adds a pprof endpoint, so
// that bench/dataplane.sh can take CPU profiles of the engine under iperf3
// load. It is a benchmark tool, not a product binary.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/trellis-sdwan/trellis/edge/dataplane/standalone"
)

func main() {
	if len(os.Args) < 2 || os.Args[1] != "dataplane" {
		fmt.Fprintln(os.Stderr, "usage: tbedge dataplane --config FILE [--status-addr ADDR] [--pprof-addr ADDR] [--log-level LEVEL]")
		os.Exit(2)
	}
	fs := flag.NewFlagSet("dataplane", flag.ExitOnError)
	cfg := fs.String("config", "", "data plane JSON configuration file (required)")
	status := fs.String("status-addr", "", "status endpoint address (host:port or unix:/path)")
	pprofAddr := fs.String("pprof-addr", "", "pprof endpoint address (host:port or unix:/path); serves /debug/pprof/")
	level := fs.String("log-level", "info", "log level: debug, info, warn or error")
	memRate := fs.Int("mem-profile-rate", 0, "runtime.MemProfileRate (bytes per sampled allocation; 0 keeps the default 512 KiB, 1 records every allocation)")
	_ = fs.Parse(os.Args[2:])
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(*level)); err != nil || *cfg == "" {
		fmt.Fprintln(os.Stderr, "tbedge dataplane: --config FILE is required and --log-level must be debug, info, warn or error")
		os.Exit(2)
	}
	if *memRate > 0 {
		runtime.MemProfileRate = *memRate
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lv}))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if *pprofAddr != "" {
		srv, err := servePprof(*pprofAddr)
		if err != nil {
			log.Error("pprof endpoint", "err", err)
			os.Exit(1)
		}
		defer srv.Close()
		log.Info("pprof endpoint listening", "addr", *pprofAddr)
	}
	if err := standalone.Run(ctx, standalone.Options{ConfigPath: *cfg, StatusAddr: *status, Logger: log}); err != nil {
		log.Error("data plane failed", "err", err)
		os.Exit(1)
	}
}

func servePprof(addr string) (*http.Server, error) {
	network := "tcp"
	if a, ok := strings.CutPrefix(addr, "unix:"); ok {
		network, addr = "unix", a
		_ = os.Remove(addr)
	}
	ln, err := net.Listen(network, addr)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			slog.Error("pprof endpoint", "err", err)
		}
	}()
	return srv, nil
}
