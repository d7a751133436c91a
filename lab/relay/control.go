package relay

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"time"
)

// Request is one control request: Op "get" returns the state, "set"
// applies Update first.
type Request struct {
	Op     string  `json:"op"`
	Update *Update `json:"update,omitempty"`
}

// Reply answers a Request.
type Reply struct {
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
	Name  string `json:"name"`
	// Impairment is the first direction's; Impairments has both by name.
	Impairment  Impairment            `json:"impairment"`
	Impairments map[string]Impairment `json:"impairments"`
	Stats       map[string]Stats      `json:"stats"`
}

// Symmetric reports whether both directions are impaired alike.
func (r Reply) Symmetric() bool {
	for _, im := range r.Impairments {
		if im != r.Impairment {
			return false
		}
	}
	return true
}

const maxRequest = 64 << 10

// maxClients bounds concurrent control connections; more wait in accept.
const maxClients = 8

// Serve answers control requests on l until ctx is done.
func Serve(ctx context.Context, l net.Listener, name string, e *Engine, log *slog.Logger) {
	var wg sync.WaitGroup
	defer wg.Wait()
	go func() { <-ctx.Done(); l.Close() }()
	slots := make(chan struct{}, maxClients)
	for {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() == nil {
				log.Error("control socket accept", "err", err)
			}
			return
		}
		wg.Add(1)
		go func() {
			defer func() { <-slots }()
			defer wg.Done()
			defer c.Close()
			stop := context.AfterFunc(ctx, func() { c.Close() })
			defer stop()
			handle(c, name, e)
		}()
	}
}

func handle(c net.Conn, name string, e *Engine) {
	sc := bufio.NewScanner(c)
	sc.Buffer(make([]byte, 4096), maxRequest)
	enc := json.NewEncoder(c)
	for {
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second)) // idle clients give their slot back
		if !sc.Scan() {
			return
		}
		var req Request
		rep := Reply{Name: name}
		if err := json.Unmarshal(sc.Bytes(), &req); err != nil {
			rep.Error = "malformed request: " + err.Error()
		} else {
			switch req.Op {
			case "get":
				rep.OK = true
			case "set":
				if req.Update == nil {
					rep.Error = "set needs an update"
					break
				}
				if err := e.Update(*req.Update); err != nil {
					rep.Error = err.Error()
					break
				}
				rep.OK = true
			default:
				rep.Error = fmt.Sprintf("unknown op %q: use get or set", req.Op)
			}
		}
		rep.Impairment, rep.Impairments, rep.Stats = e.Impairment(), e.Impairments(), e.Stats()
		if err := enc.Encode(rep); err != nil {
			return
		}
	}
}

// Call sends one request to the relay listening on the unix socket path.
func Call(ctx context.Context, path string, req Request) (Reply, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return Reply{}, fmt.Errorf("connecting to relay at %s (is the lab up?): %w", path, err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	} else {
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	}
	if err := json.NewEncoder(c).Encode(req); err != nil {
		return Reply{}, fmt.Errorf("sending to relay: %w", err)
	}
	var rep Reply
	if err := json.NewDecoder(io.LimitReader(c, 1<<20)).Decode(&rep); err != nil {
		return Reply{}, fmt.Errorf("reading relay reply: %w", err)
	}
	if !rep.OK {
		return rep, fmt.Errorf("relay %s: %s", rep.Name, rep.Error)
	}
	return rep, nil
}

// Config is what a relay process runs with.
type Config struct {
	Name        string // link name for logs and replies, e.g. "s1/wan1"
	A, B        string // interface names
	Control     string // unix socket path
	QueueFrames int
	QueueBytes  int64
	Impairment  Impairment
}

// Run opens both interfaces in the current network namespace, listens on
// the control socket and relays until ctx is done.
func Run(ctx context.Context, cfg Config, log *slog.Logger) error {
	if err := cfg.Impairment.Validate(); err != nil {
		return err
	}
	a, err := OpenPacket(cfg.A)
	if err != nil {
		return err
	}
	b, err := OpenPacket(cfg.B)
	if err != nil {
		a.Close()
		return err
	}
	e := NewEngine(a, b, [2]string{cfg.A + "->" + cfg.B, cfg.B + "->" + cfg.A}, cfg.QueueFrames, cfg.QueueBytes, log)
	if err := e.Set(cfg.Impairment); err != nil {
		a.Close()
		b.Close()
		return err
	}
	_ = os.Remove(cfg.Control)
	l, err := net.Listen("unix", cfg.Control)
	if err != nil {
		a.Close()
		b.Close()
		return fmt.Errorf("control socket: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan struct{})
	go func() { defer close(done); Serve(ctx, l, cfg.Name, e, log) }()
	log.Info("relay running", "link", cfg.Name, "a", cfg.A, "b", cfg.B, "control", cfg.Control)
	err = e.Run(ctx)
	cancel()
	<-done
	_ = os.Remove(cfg.Control)
	return err
}

// Command parses the relay's command-line flags and runs it until ctx is
// done (the hidden `trellis-lab relay` subcommand).
func Command(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("relay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg Config
	var loss, rate string
	fs.StringVar(&cfg.Name, "name", "relay", "link name")
	fs.StringVar(&cfg.A, "a", "", "first interface")
	fs.StringVar(&cfg.B, "b", "", "second interface")
	fs.StringVar(&cfg.Control, "control", "", "control unix socket path")
	fs.IntVar(&cfg.QueueFrames, "queue-frames", DefaultQueueFrames, "queue limit per direction, frames")
	fs.Int64Var(&cfg.QueueBytes, "queue-bytes", DefaultQueueBytes, "queue limit per direction, bytes")
	fs.StringVar(&loss, "loss", "0", "loss percentage")
	fs.DurationVar(&cfg.Impairment.Delay, "delay", 0, "delay per direction")
	fs.DurationVar(&cfg.Impairment.Jitter, "jitter", 0, "jitter per direction")
	fs.StringVar(&rate, "rate", "0", "rate limit, e.g. 20mbit")
	fs.BoolVar(&cfg.Impairment.Down, "down", false, "start with the link down")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var missing []string
	for _, f := range []struct{ name, v string }{{"a", cfg.A}, {"b", cfg.B}, {"control", cfg.Control}} {
		if f.v == "" {
			missing = append(missing, "--"+f.name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("relay: %s required", strings.Join(missing, ", "))
	}
	var err error
	if cfg.Impairment.LossPct, err = ParseLoss(loss); err != nil {
		return err
	}
	if cfg.Impairment.RateBps, err = ParseRate(rate); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	if err := Run(ctx, cfg, log); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}
