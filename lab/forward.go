package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/trellis-sdwan/trellis/client"
)

// maxForwardConns bounds the connections one forwarder carries at once.
const maxForwardConns = 128

// ForwardTCP accepts connections on ln (a listener in the caller's own
// namespace, e.g. the host's 127.0.0.1:8443) and joins each to a new
// connection to `to` opened inside the network namespace ns. It returns when
// ctx ends or ln fails, after every connection it carried has closed. It
// also returns, with ErrNamespaceGone, once ns no longer exists, so a
// forwarder outlives its lab by at most a couple of seconds even when the
// lab is removed without its state file.
func ForwardTCP(ctx context.Context, ln net.Listener, ns, to string, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() {
		<-ctx.Done()
		ln.Close()
	})
	wg.Go(func() {
		t := time.NewTicker(2 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if _, err := os.Stat(filepath.Join(NetnsDir, ns)); errors.Is(err, os.ErrNotExist) {
					cancel(ErrNamespaceGone)
					return
				}
			}
		}
	})
	sem := make(chan struct{}, maxForwardConns)
	for {
		in, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				if c := context.Cause(ctx); errors.Is(c, ErrNamespaceGone) {
					return c
				}
				return nil
			}
			return fmt.Errorf("accepting: %w", err)
		}
		select {
		case sem <- struct{}{}:
		default:
			log.Warn("too many forwarded connections; refusing one", "from", in.RemoteAddr())
			in.Close()
			continue
		}
		wg.Go(func() {
			defer func() { <-sem }()
			forwardConn(ctx, in, ns, to, log)
		})
	}
}

// ErrNamespaceGone ends a forwarder whose target namespace was deleted.
var ErrNamespaceGone = errors.New("the target namespace is gone")

func forwardConn(ctx context.Context, in net.Conn, ns, to string, log *slog.Logger) {
	defer in.Close()
	var out net.Conn
	err := InNamespace(ns, func() error {
		d := net.Dialer{Timeout: 10 * time.Second}
		var err error
		out, err = d.DialContext(ctx, "tcp", to)
		return err
	})
	if err != nil {
		log.Warn("forward: connecting", "to", to, "ns", ns, "err", err)
		return
	}
	defer out.Close()
	stop := context.AfterFunc(ctx, func() { in.Close(); out.Close() })
	defer stop()
	var wg sync.WaitGroup
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		// Pass the end of one direction on; the other may go on.
		if tc, ok := dst.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		} else {
			dst.Close()
		}
	}
	wg.Go(func() { pipe(out, in) })
	pipe(in, out)
	wg.Wait()
}

// StartHost starts p in the host's own network namespace (not a lab node)
// and records it as node "host", so Down stops it. It serves helpers such
// as the manage forwarder.
func (l *Lab) StartHost(p Process) (ProcRecord, error) {
	if err := validateProcs("host", []Process{p}); err != nil {
		return ProcRecord{}, err
	}
	logPath := filepath.Join(l.State.Dir, "logs", "host-"+p.Name+".log")
	rec, err := startInNamespace("", p.Name, "host", p.Argv, p.Env, l.State.Dir, logPath)
	if rec.PID > 0 {
		l.mu.Lock()
		l.State.Processes = append(l.State.Processes, rec)
		serr := l.State.Save()
		l.mu.Unlock()
		err = errors.Join(err, serr)
	}
	return rec, err
}

// StartForward runs a forwarder in the host namespace (argv: the command
// that runs ForwardTCP, e.g. `trellis-lab forward`; the lab appends
// --listen, --ns and --to) from listen, which should be a loopback address,
// to manage, and waits until manage answers through it with its pinned
// certificate. The address is recorded in the manage details. On failure
// the forwarder is stopped again.
func (l *Lab) StartForward(ctx context.Context, argv []string, listen string, timeout time.Duration) error {
	mi, err := l.LoadManageInfo()
	if err != nil {
		return err
	}
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return fmt.Errorf("forward address %q: %w", listen, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("forward address %q: want a loopback address such as 127.0.0.1:8443 (the lab stays on this host)", listen)
	}
	mn, _ := l.Plan.Node("manage")
	to := net.JoinHostPort(l.Plan.ManageAddr.String(), fmt.Sprint(ManagePort))
	full := append(append([]string{}, argv...), "--listen", listen, "--ns", mn.NS, "--to", to)
	rec, err := l.StartHost(Process{Name: ForwardProc, Argv: full})
	if err != nil {
		return err
	}
	c, err := client.New(client.Options{BaseURL: "https://" + listen, Fingerprint: mi.Fingerprint, Timeout: 5 * time.Second})
	if err != nil {
		return err
	}
	err = poll(ctx, timeout, func() error {
		if !rec.Alive() {
			return permanent{ErrProcessExited}
		}
		return c.Health(ctx)
	})
	if err != nil {
		_, _ = l.Stop(context.WithoutCancel(ctx), "host", ForwardProc, 3*time.Second)
		return fmt.Errorf("forwarding %s to manage: %w\n%s", listen, err, logTail(rec.Log, 5))
	}
	mi.Forward = "https://" + listen
	return l.saveManageInfo(mi)
}
