package dataplane

import (
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/trellis-sdwan/trellis/edge/dataplane/classify"
	"github.com/trellis-sdwan/trellis/edge/dataplane/esp"
	"github.com/trellis-sdwan/trellis/edge/dataplane/frame"
	"github.com/trellis-sdwan/trellis/edge/dataplane/ippkt"
)

// DropReason classifies dropped packets.
type DropReason int

// Drop reasons counted per tunnel (and engine-wide for packets that match
// no tunnel).
const (
	DropAuth         DropReason = iota // ESP authentication failed
	DropReplay                         // replayed or too old
	DropNoRoute                        // no route or no usable tunnel
	DropNoSA                           // unknown SPI or tunnel
	DropMalformed                      // unparseable packet
	DropTooBig                         // larger than the tunnel MTU
	DropSeqExhausted                   // outbound SA must be rekeyed
	DropSendError                      // socket or TUN write failed
	DropPolicy                         // blocked by a path rule, or no usable path with fallback drop
	DropQueue                          // QoS queue full (tail drop)
	numDropReasons
)

var dropNames = [numDropReasons]string{"auth", "replay", "no_route", "no_sa", "malformed", "too_big", "seq_exhausted", "send_error", "policy", "queue"}

func (r DropReason) String() string { return dropNames[r] }

type counters struct {
	txPackets, txBytes atomic.Uint64
	rxPackets, rxBytes atomic.Uint64
	drops              [numDropReasons]atomic.Uint64
}

func (c *counters) drop(r DropReason) { c.drops[r].Add(1) }

// inboundSA is an inbound SA; expires is zero for the current one.
type inboundSA struct {
	sa      *esp.SA
	cfg     esp.Config
	expires time.Time
}

// saSet is an immutable set of SAs of a tunnel.
type saSet struct {
	out    *esp.SA
	outCfg esp.Config
	in     []inboundSA
}

func (s *saSet) lookup(spi uint32) *esp.SA {
	for i := range s.in {
		if s.in[i].sa.SPI() == spi {
			return s.in[i].sa
		}
	}
	return nil
}

// tunnel is the runtime state of one tunnel. Fields set at creation are
// immutable; the rest is atomic or guarded by probeMu.
type tunnel struct {
	id       uint64 // for path hashing
	cfg      TunnelConfig
	ep       frame.Endpoint
	wan      *wanSock
	maxInner int    // largest original packet (bytes)
	mss4     uint16 // MSS clamp
	mss6     uint16

	remote atomic.Pointer[peerEndpoint]
	learns atomic.Uint64 // times the remote was learned from authenticated packets
	sas    atomic.Pointer[saSet]
	up     atomic.Bool
	score  atomic.Int64 // lower is better (nanoseconds of "effective RTT")

	counters

	probeMu sync.Mutex
	probe   probeState
	punch   punchState
	qual    map[classify.Thresholds]*qualState // path rule hysteresis
	fast    fastState                          // fast failure detection
	ctlTx   atomic.Uint64                      // probes and probe replies sent (in txPackets)
}

func newTunnel(id uint64, c TunnelConfig, wan *wanSock, sas *saSet, underlayMTU, tunMTU int) *tunnel {
	t := &tunnel{id: id, cfg: c, wan: wan}
	t.ep = frame.NewEndpoint(c.VNI, c.Local.As4(), c.Peer.As4())
	t.configureRemote(c.Remote)
	t.sas.Store(sas)
	t.maxInner = min(frame.MaxInner(sas.out, underlayMTU), tunMTU)
	t.mss4, t.mss6 = ippkt.MSSFor(t.maxInner)
	t.up.Store(true) // usable until probes say otherwise
	t.probe.init()
	return t
}

// peerEndpoint is where a tunnel sends: the configured endpoint, or one
// learned from the source of authenticated packets (NAT). Immutable; a
// tunnel swaps it atomically.
type peerEndpoint struct {
	ap       netip.AddrPort
	addr     *net.UDPAddr // ap, for the socket calls
	conf     netip.AddrPort
	confAddr *net.UDPAddr
	learned  bool // ap came from authenticated packets and differs from conf
}

func udpAddr(ap netip.AddrPort) *net.UDPAddr {
	ip := ap.Addr().As4()
	return &net.UDPAddr{IP: net.IP(ip[:]).To16(), Port: int(ap.Port())}
}

// configureRemote sets the configured endpoint, which wins over a learned
// one until authenticated packets come from elsewhere again.
func (t *tunnel) configureRemote(ap netip.AddrPort) {
	a := udpAddr(ap)
	t.remote.Store(&peerEndpoint{ap: ap, addr: a, conf: ap, confAddr: a})
}

// setRemote configures the endpoint ip:port (tests).
func (t *tunnel) setRemote(ip [4]byte, port uint16) {
	t.configureRemote(netip.AddrPortFrom(netip.AddrFrom4(ip), port))
}

// learnRemote switches the tunnel to from, the source of a packet that
// authenticated and passed the replay check. It reports whether the
// endpoint changed (false when another goroutine changed it first or it
// is already from).
func (t *tunnel) learnRemote(from netip.AddrPort) (prev netip.AddrPort, changed bool) {
	cur := t.remote.Load()
	if cur.ap == from {
		return cur.ap, false
	}
	n := &peerEndpoint{ap: from, addr: udpAddr(from), conf: cur.conf, confAddr: cur.confAddr, learned: from != cur.conf}
	if from == cur.conf {
		n.addr = cur.confAddr
	}
	if !t.remote.CompareAndSwap(cur, n) {
		return cur.ap, false
	}
	t.learns.Add(1)
	return cur.ap, true
}

// pickTunnel chooses a tunnel among candidates for a flow by rendezvous
// hashing: a flow stays on its tunnel while that tunnel remains a
// candidate, and only the flows of a removed tunnel move.
func pickTunnel(cands []*tunnel, flow uint32) *tunnel {
	if len(cands) == 1 {
		return cands[0]
	}
	var best *tunnel
	var bestW uint64
	for _, t := range cands {
		w := mix64(uint64(flow)<<32 ^ t.id)
		if best == nil || w > bestW {
			best, bestW = t, w
		}
	}
	return best
}

func mix64(x uint64) uint64 {
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}

// site groups the tunnels reaching one remote site. active holds the
// tunnels currently eligible for new and existing flows.
type site struct {
	name    string
	tunnels []*tunnel
	active  atomic.Pointer[[]*tunnel]
	rules   []ruleSel // per path rule (see refreshRules)
}

// refresh recomputes the eligible tunnels: the up tunnels whose quality
// score is close to the best one, so that near-equal paths share load.
// With hysteresis: a tunnel joins within 25 % + 5 ms of the best score and
// leaves only beyond 50 % + 10 ms, so that scores hovering around one
// threshold do not move flows back and forth. With no tunnel up, all
// tunnels stay eligible so that traffic keeps trying.
func (s *site) refresh() {
	var best int64 = -1
	for _, t := range s.tunnels {
		if t.up.Load() {
			if sc := t.score.Load(); best < 0 || sc < best {
				best = sc
			}
		}
	}
	old := s.active.Load()
	wasActive := func(t *tunnel) bool {
		if old == nil {
			return false
		}
		for _, a := range *old {
			if a == t {
				return true
			}
		}
		return false
	}
	var act []*tunnel
	if best < 0 {
		act = append(act, s.tunnels...)
	} else {
		join := best + best/4 + int64(5*time.Millisecond)
		stay := best + best/2 + int64(10*time.Millisecond)
		for _, t := range s.tunnels {
			if !t.up.Load() {
				continue
			}
			limit := join
			if wasActive(t) {
				limit = stay
			}
			if t.score.Load() <= limit {
				act = append(act, t)
			}
		}
	}
	if old != nil && sameTunnels(*old, act) {
		return
	}
	s.active.Store(&act)
}

func sameTunnels(a, b []*tunnel) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
