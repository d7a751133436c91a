package dataplane

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netns"
	"golang.zx2c4.com/wireguard/tun"

	"github.com/trellis-sdwan/trellis/edge/dataplane/classify"
	"github.com/trellis-sdwan/trellis/edge/dataplane/esp"
	"github.com/trellis-sdwan/trellis/edge/dataplane/frame"
	"github.com/trellis-sdwan/trellis/edge/dataplane/ippkt"
)

const (
	batchSize = 128
	// Buffers hold a whole TUN super-packet or coalesced TCP segments.
	bufSize = frame.MaxHeadroom + 65535 + frame.MaxTailroom
	// tunWriteOffset is the room left before packets written to the TUN
	// (the TUN writer puts its virtio-net header there).
	tunWriteOffset = 16
)

// snapshot is an immutable view of the configuration used by the packet
// paths. Apply builds a new one and swaps it in atomically.
type snapshot struct {
	cfg     Config
	tunnels map[string]*tunnel
	byVNI   map[uint32]*tunnel
	sites   map[string]*site
	routes  *routeTable
	wans    map[wanKey]*wanSock
	wanErrs map[wanKey]string // WANs of cfg.WANs whose socket failed to open
	pol     *policyState      // nil: no classification (tests)
	flows   *flowTable
}

// Engine is a running data plane.
type Engine struct {
	log    *slog.Logger
	dev    tun.Device
	tunMTU atomic.Int64
	tunIdx int
	tunCfg TUNConfig
	// mtuFixed: the TUN MTU was computed from tunnels (or configured).
	// An engine started without tunnels (WANs only, for STUN) computes it
	// again from the first tunnels it gets (cfgMu).
	mtuFixed bool
	nsh      netns.NsHandle // the engine's network namespace (for netlink)

	modMu    sync.Mutex // serialises read-modify-write helpers
	cfgMu    sync.Mutex // serialises reconfiguration
	snap     atomic.Pointer[snapshot]
	nextID   uint64
	routesUp map[netip.Prefix]bool   // kernel routes installed (cfgMu)
	apps     map[string]*appCounters // per application id (cfgMu)
	// refreshMu serialises the recomputation of path sets by the probe
	// loop's regular and fast ticks.
	refreshMu sync.Mutex
	polGen    uint64 // policy generation (cfgMu)

	global counters  // drops not attributable to a tunnel
	stunTx stunTable // pending STUN requests of all WAN sockets

	// Used by the TUN reader only: ICMP "fragmentation needed" replies.
	icmpBuf  []byte
	icmpLast time.Time

	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	closed  atomic.Bool
	stopped chan struct{} // closed when Close has finished
}

// TUNMTU computes the TUN MTU for a configuration: the largest original
// packet every configured tunnel carries within the underlay MTU (the
// AES-CBC overhead is assumed when there are no tunnels yet).
func TUNMTU(cfg Config) int {
	c := cfg.withDefaults()
	if c.TUN.MTU != 0 {
		return c.TUN.MTU
	}
	worst := esp.AESGCM128
	if len(c.Tunnels) == 0 {
		worst = esp.AESCBC128SHA256128
	}
	for _, t := range c.Tunnels {
		if t.Outbound.Transform == esp.AESCBC128SHA256128 || t.Inbound.Transform == esp.AESCBC128SHA256128 {
			worst = esp.AESCBC128SHA256128
		}
	}
	sa, _ := esp.New(sampleSA(worst))
	return frame.MaxInner(sa, c.UnderlayMTU)
}

func sampleSA(t esp.Transform) esp.Config {
	if t == esp.AESCBC128SHA256128 {
		return esp.Config{SPI: 256, Transform: t, EncKey: make([]byte, 16), AuthKey: make([]byte, 32)}
	}
	return esp.Config{SPI: 256, Transform: t, EncKey: make([]byte, 20)}
}

// New creates the TUN device, opens the WAN sockets, applies cfg and starts
// the packet and probe goroutines. Close (or cancelling ctx) stops it.
func New(ctx context.Context, cfg Config, log *slog.Logger) (*Engine, error) {
	if log == nil {
		log = slog.Default()
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid data plane configuration: %w", err)
	}
	if cfg.TUN.Name == "" {
		return nil, errors.New("invalid data plane configuration: the TUN device needs a name")
	}
	e := &Engine{log: log, tunCfg: cfg.TUN, routesUp: map[netip.Prefix]bool{}, stopped: make(chan struct{})}
	mtu := TUNMTU(cfg)
	e.tunMTU.Store(int64(mtu))
	e.mtuFixed = cfg.TUN.MTU != 0 || len(cfg.Tunnels) > 0
	nsh, err := netns.Get()
	if err != nil {
		nsh = -1
	}
	e.nsh = nsh
	dev, err := tun.CreateTUN(cfg.TUN.Name, mtu)
	if err != nil {
		nsh.Close()
		return nil, fmt.Errorf("creating TUN device %q (needs root and /dev/net/tun): %w", cfg.TUN.Name, err)
	}
	e.dev = dev
	idx, err := setupTUN(cfg.TUN, mtu)
	if err != nil {
		dev.Close()
		e.nsh.Close()
		return nil, err
	}
	e.tunIdx = idx
	e.snap.Store(&snapshot{tunnels: map[string]*tunnel{}, byVNI: map[uint32]*tunnel{}, sites: map[string]*site{}, routes: &routeTable{}, wans: map[wanKey]*wanSock{}})
	e.ctx, e.cancel = context.WithCancel(ctx)
	if err := e.Apply(cfg); err != nil {
		e.Close()
		return nil, err
	}
	e.wg.Add(2)
	go e.tunReadLoop()
	go e.probeLoop()
	go func() {
		<-e.ctx.Done()
		e.Close()
	}()
	go e.watchTUN()
	log.Info("data plane started", "tun", cfg.TUN.Name, "mtu", mtu, "tunnels", len(cfg.Tunnels), "routes", len(cfg.Routes))
	return e, nil
}

// watchTUN drains the TUN device's events (so that its netlink listener
// never blocks) and logs them.
func (e *Engine) watchTUN() {
	for {
		select {
		case <-e.ctx.Done():
			return
		case ev, ok := <-e.dev.Events():
			if !ok {
				return
			}
			switch {
			case ev&tun.EventDown != 0:
				e.log.Warn("TUN device went down", "tun", e.tunCfg.Name)
			case ev&tun.EventUp != 0:
				e.log.Debug("TUN device up", "tun", e.tunCfg.Name)
			case ev&tun.EventMTUUpdate != 0:
				if mtu, err := e.dev.MTU(); err == nil && mtu != e.MTU() {
					e.log.Warn("TUN MTU changed outside the data plane", "tun", e.tunCfg.Name, "mtu", mtu, "expected", e.MTU())
				}
			}
		}
	}
}

// MTU returns the TUN device MTU.
func (e *Engine) MTU() int { return int(e.tunMTU.Load()) }

// Close stops the engine, closes the TUN device (which removes its routes)
// and the WAN sockets, and waits for the goroutines.
func (e *Engine) Close() error {
	// Under cfgMu so that no Apply opens sockets after we collected them.
	e.cfgMu.Lock()
	if !e.closed.CompareAndSwap(false, true) {
		e.cfgMu.Unlock()
		<-e.stopped // another caller is closing: wait for it to finish
		return nil
	}
	wans := e.snap.Load().wans
	e.cfgMu.Unlock()
	e.cancel()
	var err error
	if e.dev != nil {
		err = e.dev.Close()
		e.nsh.Close()
	}
	for _, w := range wans {
		w.close()
	}
	e.wg.Wait()
	close(e.stopped)
	e.log.Info("data plane stopped")
	return err
}

// Done is closed when the engine has stopped.
func (e *Engine) Done() <-chan struct{} { return e.ctx.Done() }

// Config returns the configuration in force.
func (e *Engine) Config() Config { return e.snap.Load().cfg }

// Apply replaces the configuration. Tunnels whose identity (name, site,
// VNI, WAN, /31 addresses) is unchanged keep their state; a changed remote
// endpoint or SA takes effect in place, and a replaced inbound SA stays
// valid for SAGrace. The TUN settings cannot change at run time.
func (e *Engine) Apply(cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("invalid data plane configuration: %w", err)
	}
	e.cfgMu.Lock()
	defer e.cfgMu.Unlock()
	if e.closed.Load() {
		return errors.New("data plane is closed")
	}
	if cfg.TUN.Name != e.tunCfg.Name || cfg.TUN.Address != e.tunCfg.Address || cfg.TUN.MTU != e.tunCfg.MTU || cfg.TUN.ManageRoutes != e.tunCfg.ManageRoutes {
		return errors.New("the TUN device settings cannot change at run time: restart the data plane")
	}
	cfg = cloneConfig(cfg)
	cfg = cfg.withDefaults()
	old := e.snap.Load()
	if e.apps == nil {
		e.apps = map[string]*appCounters{}
	}
	e.polGen++
	pol, err := e.compilePolicy(&cfg, e.polGen)
	if err != nil {
		return fmt.Errorf("invalid data plane configuration: %w", err)
	}
	flows := old.flows
	if flows == nil {
		flows = newFlowTable(cfg.FlowTableSize, cfg.FlowIdleTimeout)
	}
	ns := &snapshot{cfg: cfg, pol: pol, flows: flows, tunnels: map[string]*tunnel{}, byVNI: map[uint32]*tunnel{}, sites: map[string]*site{}, wans: map[wanKey]*wanSock{}}
	var opened []*wanSock
	fail := func(err error) error {
		for _, w := range opened {
			w.close()
		}
		return err
	}
	if !e.mtuFixed && len(cfg.Tunnels) > 0 {
		e.mtuFixed = true
		if want := TUNMTU(cfg); want != e.MTU() {
			e.setTUNMTU(want)
		}
	}
	now := time.Now()
	for _, tc := range cfg.Tunnels {
		k := wanKey{iface: tc.WANInterface, addr: tc.WANAddress, port: cfg.UDPPort}
		w := ns.wans[k]
		if w == nil {
			w = old.wans[k]
		}
		if w == nil {
			var err error
			if w, err = openWAN(k); err != nil {
				return fail(fmt.Errorf("tunnel %q: %w", tc.Name, err))
			}
			opened = append(opened, w)
		}
		ns.wans[k] = w
		var t *tunnel
		if ot := old.tunnels[tc.Name]; ot != nil && ot.cfg.sameIdentity(&tc) && ot.wan == w {
			sas, err := rollSAs(ot.sas.Load(), tc, now, cfg.SAGrace)
			if err != nil {
				return fail(fmt.Errorf("tunnel %q: %w", tc.Name, err))
			}
			t = ot
			t.sas.Store(sas)
			// A changed configured endpoint wins over a learned one; an
			// unchanged one leaves a learned (NAT) endpoint alone.
			if t.remote.Load().conf != tc.Remote {
				t.configureRemote(tc.Remote)
			}
		} else {
			sas, err := rollSAs(nil, tc, now, cfg.SAGrace)
			if err != nil {
				return fail(fmt.Errorf("tunnel %q: %w", tc.Name, err))
			}
			e.nextID++
			t = newTunnel(mix64(e.nextID), tc, w, sas, cfg.UnderlayMTU, e.MTU())
		}
		ns.tunnels[tc.Name] = t
		ns.byVNI[tc.VNI] = t
		s := ns.sites[tc.Site]
		if s == nil {
			s = &site{name: tc.Site, rules: make([]ruleSel, pol.pol.NumRules())}
			ns.sites[tc.Site] = s
		}
		s.tunnels = append(s.tunnels, t)
	}
	// WANs without tunnels (yet): a socket that cannot be opened does not
	// fail the configuration (tunnels need none of them).
	ns.wanErrs = map[wanKey]string{}
	for _, wc := range cfg.WANs {
		k := wanKey{iface: wc.Interface, addr: wc.Address, port: cfg.UDPPort}
		if ns.wans[k] != nil {
			continue
		}
		w := old.wans[k]
		if w == nil {
			var err error
			if w, err = openWAN(k); err != nil {
				if old.wanErrs[k] != err.Error() {
					e.log.Warn("WAN socket not opened; STUN waits for it (retried at the next Apply)", "wan", k.String(), "err", err)
				}
				ns.wanErrs[k] = err.Error()
				continue
			}
			opened = append(opened, w)
		}
		ns.wans[k] = w
	}
	for _, t := range ns.tunnels {
		t.probeMu.Lock()
		t.updateQuality(t.up.Load(), t.probe.stats(), pol.thresholds, hysteresis{})
		t.probeMu.Unlock()
	}
	for _, s := range ns.sites {
		s.refresh()
		s.refreshRules(pol)
	}
	ns.routes = newRouteTable(cfg.Routes, ns.sites)
	e.snap.Store(ns)
	e.syncQoS(ns)
	for k, w := range old.wans {
		if ns.wans[k] != w {
			w.close()
		}
	}
	for _, w := range opened {
		e.wg.Add(1)
		go e.receiveLoop(w)
	}
	if e.tunCfg.ManageRoutes {
		e.syncKernelRoutes(cfg.Routes)
	}
	for name, t := range ns.tunnels {
		if old.tunnels[name] != t {
			e.log.Info("tunnel configured", "tunnel", name, "site", t.cfg.Site, "vni", t.cfg.VNI, "wan", t.wan.key.String(), "remote", t.cfg.Remote.String(), "mtu", t.maxInner)
		}
	}
	for name, t := range old.tunnels {
		if ns.tunnels[name] != t {
			e.log.Info("tunnel removed", "tunnel", name)
		}
	}
	return nil
}

func cloneConfig(c Config) Config {
	c.WANs = append([]WANConfig(nil), c.WANs...)
	c.Tunnels = append([]TunnelConfig(nil), c.Tunnels...)
	c.Routes = append([]RouteConfig(nil), c.Routes...)
	c.Applications = append([]classify.Application(nil), c.Applications...)
	c.PathRules = append([]classify.PathRule(nil), c.PathRules...)
	c.WANQoS = append([]WANQoS(nil), c.WANQoS...)
	if c.QoS != nil {
		q := *c.QoS
		c.QoS = &q
	}
	return c
}

// rollSAs builds a tunnel's SA set from its configuration, reusing the SAs
// of cur that did not change. A replaced inbound SA is kept until grace
// has passed, so that packets sealed before the peer switched still open.
func rollSAs(cur *saSet, tc TunnelConfig, now time.Time, grace time.Duration) (*saSet, error) {
	ns := &saSet{outCfg: tc.Outbound}
	if cur != nil && cur.outCfg.Equal(tc.Outbound) {
		ns.out = cur.out
	} else {
		sa, err := esp.New(tc.Outbound)
		if err != nil {
			return nil, fmt.Errorf("outbound SA: %w", err)
		}
		ns.out = sa
	}
	if cur != nil && len(cur.in) > 0 && cur.in[0].cfg.Equal(tc.Inbound) {
		ns.in = cur.in
		return ns, nil
	}
	sa, err := esp.New(tc.Inbound)
	if err != nil {
		return nil, fmt.Errorf("inbound SA: %w", err)
	}
	ns.in = []inboundSA{{sa: sa, cfg: tc.Inbound}}
	if cur != nil {
		for i, old := range cur.in {
			if old.sa.SPI() == tc.Inbound.SPI {
				continue
			}
			if i == 0 {
				old.expires = now.Add(grace)
			}
			if !old.expires.IsZero() && old.expires.After(now) {
				ns.in = append(ns.in, old)
			}
		}
	}
	return ns, nil
}

// pruneSAs drops inbound SAs whose grace period is over.
func (t *tunnel) pruneSAs(now time.Time) {
	cur := t.sas.Load()
	keep := 0
	for _, in := range cur.in {
		if in.expires.IsZero() || in.expires.After(now) {
			keep++
		}
	}
	if keep == len(cur.in) {
		return
	}
	ns := &saSet{out: cur.out, outCfg: cur.outCfg}
	for _, in := range cur.in {
		if in.expires.IsZero() || in.expires.After(now) {
			ns.in = append(ns.in, in)
		}
	}
	t.sas.CompareAndSwap(cur, ns)
}

// AddTunnel adds a tunnel (an error if the name exists).
func (e *Engine) AddTunnel(tc TunnelConfig) error {
	return e.modify(func(c *Config) error {
		for _, t := range c.Tunnels {
			if t.Name == tc.Name {
				return fmt.Errorf("tunnel %q already exists: use UpdateTunnel", tc.Name)
			}
		}
		c.Tunnels = append(c.Tunnels, tc)
		return nil
	})
}

// UpdateTunnel replaces the configuration of an existing tunnel.
func (e *Engine) UpdateTunnel(tc TunnelConfig) error {
	return e.modify(func(c *Config) error {
		for i, t := range c.Tunnels {
			if t.Name == tc.Name {
				c.Tunnels[i] = tc
				return nil
			}
		}
		return fmt.Errorf("no tunnel %q to update", tc.Name)
	})
}

// RemoveTunnel removes a tunnel.
func (e *Engine) RemoveTunnel(name string) error {
	return e.modify(func(c *Config) error {
		for i, t := range c.Tunnels {
			if t.Name == name {
				c.Tunnels = append(c.Tunnels[:i:i], c.Tunnels[i+1:]...)
				return nil
			}
		}
		return fmt.Errorf("no tunnel %q to remove", name)
	})
}

// SetRoutes replaces the route table.
func (e *Engine) SetRoutes(routes []RouteConfig) error {
	return e.modify(func(c *Config) error {
		c.Routes = append([]RouteConfig(nil), routes...)
		return nil
	})
}

func (e *Engine) modify(f func(*Config) error) error {
	// Serialise read-modify-write cycles; Apply takes cfgMu itself.
	e.modMu.Lock()
	defer e.modMu.Unlock()
	c := cloneConfig(e.snap.Load().cfg)
	c.TUN = e.tunCfg
	if err := f(&c); err != nil {
		return err
	}
	return e.Apply(c)
}

// tunReadLoop is the outbound path: TUN → route → tunnel → ESP → WAN.
func (e *Engine) tunReadLoop() {
	defer e.wg.Done()
	n := max(e.dev.BatchSize(), 1)
	bufs := make([][]byte, n)
	for i := range bufs {
		bufs[i] = make([]byte, bufSize)
	}
	sizes := make([]int, n)
	batches := map[*wanSock]*sendBatch{}
	for {
		cnt, err := e.dev.Read(bufs, sizes, frame.MaxHeadroom)
		if cnt > 0 {
			e.encapBatch(e.snap.Load(), bufs[:cnt], sizes, batches, time.Now().UnixNano())
		}
		if err != nil {
			if e.closed.Load() || errors.Is(err, os.ErrClosed) {
				return
			}
			if errors.Is(err, tun.ErrTooManySegments) {
				e.global.drop(DropMalformed)
				continue
			}
			e.log.Warn("reading from TUN", "err", err)
			e.global.drop(DropMalformed)
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// encapBatch frames the packets read from the TUN and sends them.
func (e *Engine) encapBatch(snap *snapshot, bufs [][]byte, sizes []int, batches map[*wanSock]*sendBatch, now int64) {
	for i := range bufs {
		e.encapOne(snap, bufs[i], sizes[i], batches, now)
	}
	for w, b := range batches {
		if b.n > 0 || b.locked {
			b.flush(w, e.log.Warn)
		}
		if w.closed.Load() {
			delete(batches, w)
		}
	}
}

func (e *Engine) encapOne(snap *snapshot, buf []byte, size int, batches map[*wanSock]*sendBatch, now int64) {
	pkt := buf[frame.MaxHeadroom : frame.MaxHeadroom+size]
	dst, ok := ippkt.Dst(pkt)
	if !ok {
		e.global.drop(DropMalformed)
		return
	}
	s := snap.routes.lookup(dst)
	if s == nil {
		e.global.drop(DropNoRoute)
		return
	}
	var cands []*tunnel
	var flow uint32
	d := flowDecision{class: classify.BestEffort, dscp: -1}
	if snap.pol != nil {
		tu, _ := ippkt.ParseTuple(pkt)
		var h uint64
		d, h = snap.flows.lookup(snap.pol, &tu, ippkt.DSCP(pkt), now)
		flow = uint32(h >> 32)
		if d.rule >= 0 {
			r := snap.pol.pol.Rule(int(d.rule))
			if r.Block {
				e.global.drop(DropPolicy)
				return
			}
			if sel := s.rules[d.rule].Load(); sel != nil && len(*sel) > 0 {
				cands = *sel
			} else if r.FallbackDrop {
				e.global.drop(DropPolicy)
				return
			}
		}
		if d.dscp >= 0 {
			ippkt.SetDSCP(pkt, uint8(d.dscp))
		}
	} else {
		flow = ippkt.FlowHash(pkt)
	}
	if cands == nil {
		act := s.active.Load()
		if act == nil || len(*act) == 0 {
			e.global.drop(DropNoRoute)
			return
		}
		cands = *act
	}
	t := pickTunnel(cands, flow)
	if size > t.maxInner {
		t.drop(DropTooBig)
		e.sendFragNeeded(t, pkt)
		return
	}
	if pkt[0]>>4 == 4 {
		ippkt.ClampMSS(pkt, t.mss4)
	} else {
		ippkt.ClampMSS(pkt, t.mss6)
	}
	if ws := t.wan.sched.Load(); ws != nil {
		// Shaped WAN: the scheduler seals and sends (qos.go).
		if !ws.enqueue(t, d.class, pkt) {
			t.drop(DropQueue)
			return
		}
		if d.app != nil {
			d.app.tx(size)
		}
		return
	}
	b := batches[t.wan]
	if b == nil {
		b = newSendBatch(batchSize)
		batches[t.wan] = b
	}
	// Sequence numbers must reach the socket in the order they are drawn
	// (see wanSock.sendMu): hold the WAN until this batch is sent.
	b.hold(t.wan)
	sas := t.sas.Load()
	f, err := frame.Encap(buf, frame.MaxHeadroom, size, &t.ep, sas.out)
	if err != nil {
		if errors.Is(err, esp.ErrSeqExhausted) {
			t.drop(DropSeqExhausted)
		} else {
			t.drop(DropMalformed)
		}
		return
	}
	t.txPackets.Add(1)
	t.txBytes.Add(uint64(size))
	if d.app != nil {
		d.app.tx(size)
	}
	b.add(t, f)
	if b.n == len(b.msgs) {
		b.flush(t.wan, e.log.Warn)
	}
}

// sendFragNeeded answers an IPv4 packet with DF set that is too big for its
// tunnel with an ICMP "fragmentation needed" (at most one per millisecond),
// so that path MTU discovery adapts the sender. Called by the TUN reader.
func (e *Engine) sendFragNeeded(t *tunnel, pkt []byte) {
	now := time.Now()
	if now.Sub(e.icmpLast) < time.Millisecond {
		return
	}
	if e.icmpBuf == nil {
		e.icmpBuf = make([]byte, tunWriteOffset+128)
	}
	src := t.ep.Local
	if a := e.tunCfg.Address.Addr(); a.Is4() {
		src = a.As4()
	}
	n := ippkt.BuildFragNeeded(e.icmpBuf[tunWriteOffset:], src, pkt, t.maxInner)
	if n == 0 {
		return
	}
	e.icmpLast = now
	if _, err := e.dev.Write([][]byte{e.icmpBuf[:tunWriteOffset+n]}, tunWriteOffset); err != nil {
		e.log.Debug("writing ICMP fragmentation needed to TUN", "err", err)
	}
}

// receiveLoop is the inbound path of one WAN: UDP → VNI → tunnel → SPI →
// ESP → GRE → TUN. It owns the inbound SAs of the tunnels on its WAN.
func (e *Engine) receiveLoop(w *wanSock) {
	defer e.wg.Done()
	bufs := make([][]byte, batchSize)
	for i := range bufs {
		bufs[i] = make([]byte, bufSize)
	}
	rc, err := w.conn.SyscallConn()
	if err != nil {
		e.log.Error("WAN socket without raw access", "wan", w.key.String(), "err", err)
		return
	}
	rb := newRecvBatch(rc, bufs, 64)
	// Decrypted packets are copied into their own buffers so that the TUN
	// writer can coalesce TCP segments (GRO) in place.
	tunBufs := make([][]byte, batchSize)
	for i := range tunBufs {
		tunBufs[i] = make([]byte, bufSize)
	}
	toTUN := make([][]byte, 0, batchSize)
	flushTUN := func() {
		if len(toTUN) == 0 {
			return
		}
		if _, err := e.dev.Write(toTUN, tunWriteOffset); err != nil && !e.closed.Load() {
			e.global.drop(DropSendError)
			e.log.Debug("writing to TUN", "err", err)
		}
		toTUN = toTUN[:0]
	}
	reply := make([]byte, 2048)
	for {
		n, err := rb.read()
		if err != nil {
			if w.closed.Load() || errors.Is(err, net.ErrClosed) {
				return
			}
			e.log.Warn("reading from WAN socket", "wan", w.key.String(), "err", err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		snap := e.snap.Load()
		now := time.Now()
		for i := 0; i < n; i++ {
			size := rb.size(i)
			seg := size
			if w.gro {
				if s := groSize(rb.oob(i)); s > 0 {
					seg = s
				}
			}
			from := rb.from(i)
			for off := 0; off < size; off += seg {
				d := bufs[i][off:min(off+seg, size)]
				if isSTUN(d) {
					e.stunTx.handle(d, from)
					continue
				}
				start, end := e.decapOne(snap, w, d, from, reply, now)
				if start < 0 {
					continue
				}
				tb := tunBufs[len(toTUN)]
				l := copy(tb[tunWriteOffset:], d[start:end])
				toTUN = append(toTUN, tb[:tunWriteOffset+l])
				if len(toTUN) == len(tunBufs) {
					flushTUN()
				}
			}
		}
		flushTUN()
	}
}

// decapOne processes one received datagram. It returns the bounds of the
// original packet in b when it must go to the TUN, or -1.
func (e *Engine) decapOne(snap *snapshot, w *wanSock, b []byte, from netip.AddrPort, reply []byte, now time.Time) (start, end int) {
	t, inner, reason := decap(snap, w, b)
	if reason >= 0 {
		if t != nil {
			t.drop(reason)
		} else {
			e.global.drop(reason)
		}
		return -1, -1
	}
	t.rxPackets.Add(1)
	t.rxBytes.Add(uint64(len(inner)))
	// Learn the peer's endpoint from packets that authenticated and passed
	// the replay check (symmetric NAT, CGNAT, NAT rebinding); never from
	// anything else (see README, "Learned endpoints").
	if from.IsValid() && t.remote.Load().ap != from {
		if prev, ok := t.learnRemote(from); ok {
			e.log.Info("tunnel endpoint learned from authenticated packets", "tunnel", t.cfg.Name, "remote", from.String(), "previous", prev.String(), "configured", t.cfg.Remote.String())
		}
	}
	if inner[0]>>4 == 4 && [4]byte(inner[16:20]) == t.ep.Local {
		e.handleProbe(t, inner, reply, now)
		return -1, -1
	}
	if inner[0]>>4 == 4 {
		ippkt.ClampMSS(inner, t.mss4)
	} else {
		ippkt.ClampMSS(inner, t.mss6)
	}
	if snap.pol != nil {
		// The reply direction finds the flow's entry (or, for a flow the
		// far side started, classifies it by this first packet).
		if tu, ok := ippkt.ParseTuple(inner); ok {
			d, _ := snap.flows.lookup(snap.pol, &tu, ippkt.DSCP(inner), now.UnixNano())
			d.app.rx(len(inner))
		}
	}
	// inner is a sub-slice of b: find its position.
	start = cap(b) - cap(inner)
	return start, start + len(inner)
}

// decap parses and authenticates a frame received on WAN w. On success it
// returns the tunnel and the original packet (reason -1); otherwise the
// drop reason and, when known, the tunnel to charge it to.
func decap(snap *snapshot, w *wanSock, b []byte) (*tunnel, []byte, DropReason) {
	o, err := frame.ParseOuter(b)
	if err != nil {
		return nil, nil, DropMalformed
	}
	t := snap.byVNI[o.VNI]
	if t == nil {
		return nil, nil, DropNoSA
	}
	if t.wan != w || o.Dst != t.ep.Local || o.Src != t.ep.Remote {
		return t, nil, DropMalformed
	}
	spi, _ := esp.PeekSPI(o.ESP)
	sa := t.sas.Load().lookup(spi)
	if sa == nil {
		return t, nil, DropNoSA
	}
	payload, nh, err := sa.Open(o.ESP)
	switch {
	case errors.Is(err, esp.ErrAuth):
		return t, nil, DropAuth
	case errors.Is(err, esp.ErrReplay):
		return t, nil, DropReplay
	case err != nil:
		return t, nil, DropMalformed
	}
	if nh != frame.ProtoGRE {
		return t, nil, DropMalformed
	}
	_, inner, err := frame.ParseGRE(payload)
	if err != nil || !validInner(inner) {
		return t, nil, DropMalformed
	}
	return t, inner, -1
}

// validInner checks that an original packet is a complete IP packet whose
// header length matches the bytes carried (so that nothing else is written
// to the TUN).
func validInner(p []byte) bool {
	switch p[0] >> 4 {
	case 4:
		return len(p) >= 20 && int(p[2])<<8|int(p[3]) == len(p)
	case 6:
		return len(p) >= 40 && int(p[4])<<8|int(p[5])+40 == len(p)
	}
	return false
}
