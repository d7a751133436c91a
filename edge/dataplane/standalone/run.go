package standalone

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/trellis-sdwan/trellis/edge/dataplane"
)

// Options are the command-line settings of `trellis-edge dataplane`.
type Options struct {
	ConfigPath string
	// StatusAddr is a TCP address (127.0.0.1:9477) or "unix:/path" for
	// the status endpoint; empty disables it.
	StatusAddr string
	Logger     *slog.Logger
}

// Run starts the data plane and blocks until ctx is cancelled. SIGHUP
// reloads the configuration file (tunnels and routes; the TUN settings
// need a restart).
func Run(ctx context.Context, o Options) error {
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	cfg, err := Load(o.ConfigPath)
	if err != nil {
		return err
	}
	eng, err := dataplane.New(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer eng.Close()

	if o.StatusAddr != "" {
		network, addr := "tcp", o.StatusAddr
		if a, ok := strings.CutPrefix(addr, "unix:"); ok {
			network, addr = "unix", a
			_ = os.Remove(addr)
		}
		ln, err := net.Listen(network, addr)
		if err != nil {
			return fmt.Errorf("status endpoint on %s: %w", o.StatusAddr, err)
		}
		srv := &http.Server{Handler: eng.Handler(), ReadHeaderTimeout: 5 * time.Second}
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("status endpoint", "err", err)
			}
		}()
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_ = srv.Shutdown(sctx)
		}()
		log.Info("status endpoint listening", "addr", ln.Addr().String())
	}

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			log.Info("shutting down")
			return nil
		case <-eng.Done():
			return errors.New("data plane stopped unexpectedly")
		case <-hup:
			c, err := Load(o.ConfigPath)
			if err == nil {
				err = eng.Apply(c)
			}
			if err != nil {
				log.Error("reloading configuration; keeping the previous one", "err", err)
			} else {
				log.Info("configuration reloaded")
			}
		}
	}
}
