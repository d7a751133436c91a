package agent

import (
	"context"
	"log/slog"
	"path/filepath"
	"sync"

	"github.com/trellis-sdwan/trellis/edge/firewall"
	"github.com/trellis-sdwan/trellis/wire/devproto"
)

// FirewallStateFile is the state directory's record of the 1:1 NAT
// addresses the firewall added to WANs.
const FirewallStateFile = "firewall.json"

// FirewallApplier applies the document's firewall, port forwards, 1:1
// NAT and Internet-breakout rules through edge/firewall (table inet
// trellis_fw, replaced atomically; built-in rules even when the document
// has no firewall). While a document is applied it watches the WANs and
// re-steers breakout traffic when one loses or regains its link or
// address. A nil document removes the table, the routing rules and the
// addresses it added. It runs after the interfaces applier (it needs the
// WANs' routing tables and addresses).
type FirewallApplier struct {
	// Ctx bounds the WAN watcher (the agent's context).
	Ctx context.Context
	// TUNName is the data plane's TUN device ("tunnel" in rules).
	TUNName string
	// StateFile records the addresses added ("" = memory only).
	StateFile string
	Log       *slog.Logger

	mu      sync.Mutex
	m       *firewall.Manager
	stop    context.CancelFunc
	stopped chan struct{}
}

// NewFirewallApplier returns an applier recording its state in
// <stateDir>/firewall.json.
func NewFirewallApplier(ctx context.Context, stateDir, tun string, log *slog.Logger) *FirewallApplier {
	return &FirewallApplier{Ctx: ctx, TUNName: tun, StateFile: filepath.Join(stateDir, FirewallStateFile), Log: log}
}

// Name implements Applier.
func (a *FirewallApplier) Name() string { return "firewall" }

// Apply implements Applier.
func (a *FirewallApplier) Apply(_ context.Context, _, next *devproto.Desired) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.m == nil {
		log := a.Log
		if log == nil {
			log = slog.Default()
		}
		m, err := firewall.New(firewall.Options{TUN: a.TUNName, StateFile: a.StateFile, Log: log.With("component", "firewall")})
		if err != nil {
			return err
		}
		a.m = m
	}
	if err := a.m.Apply(next); err != nil {
		return err
	}
	if next == nil {
		a.stopLocked()
	} else if a.stop == nil {
		parent := a.Ctx
		if parent == nil {
			parent = context.Background()
		}
		ctx, cancel := context.WithCancel(parent)
		a.stop, a.stopped = cancel, make(chan struct{})
		go func(m *firewall.Manager, done chan struct{}) {
			defer close(done)
			m.Watch(ctx)
		}(a.m, a.stopped)
	}
	return nil
}

// Ruleset returns the ruleset in force (nil: none).
func (a *FirewallApplier) Ruleset() *firewall.Ruleset {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.m == nil {
		return nil
	}
	return a.m.Applied()
}

func (a *FirewallApplier) stopLocked() {
	if a.stop != nil {
		a.stop()
		<-a.stopped
		a.stop, a.stopped = nil, nil
	}
}

// Close stops the WAN watcher and leaves the firewall in force (it keeps
// protecting the site while the edge restarts).
func (a *FirewallApplier) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.stopLocked()
	return nil
}
