package dataplane

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/stun/v3"
)

// STUN (RFC 5389) runs on the tunnel sockets themselves, so that the
// mapping a NAT gives them is the one peers must send tunnel traffic to.
// The receive loops hand STUN messages (recognised by their first two bits
// and magic cookie, which a VxLAN header never has) to the transaction
// table; everything else takes the tunnel path without any extra work.

// STUN retransmissions: a request is sent at 0, 400 ms and 1.2 s and
// given up at 2 s (RFC 5389 §7.2.1, bounded so that a NAT check ends
// quickly).
var (
	stunRetransmit = []time.Duration{0, 400 * time.Millisecond, 1200 * time.Millisecond}
	stunTimeout    = 2 * time.Second
)

// attrChangeRequest is RFC 5780's CHANGE-REQUEST; flag 0x02 asks the
// server to answer from its other port.
const (
	attrChangeRequest = stun.AttrChangeRequest
	changePortFlag    = 0x02
)

// ErrSTUNTimeout is returned when no STUN answer arrived in time.
var ErrSTUNTimeout = errors.New("no STUN answer")

// STUNResult is the answer to one Binding request.
type STUNResult struct {
	// Mapped is the public endpoint the server saw the request from
	// (XOR-MAPPED-ADDRESS, or MAPPED-ADDRESS from an old server).
	Mapped netip.AddrPort
	// From is where the answer came from (another port than the server's
	// after a change-port request).
	From netip.AddrPort
	// Local is the WAN socket's own address and port (the address is
	// unspecified when the socket is bound to an interface only).
	Local netip.AddrPort
	RTT   time.Duration
}

type stunReply struct {
	res STUNResult
	err error
}

type stunTx struct {
	server     netip.AddrPort
	changePort bool
	ch         chan stunReply // buffered (1)
}

// stunTable matches STUN answers to pending requests by transaction ID.
type stunTable struct {
	mu      sync.Mutex
	pending map[[stun.TransactionIDSize]byte]*stunTx

	requests, answers, stray atomic.Uint64
}

// isSTUN tells a STUN message from a VxLAN frame: the two most significant
// bits of a STUN message are zero and bytes 4..8 are the magic cookie
// 0x2112A442; a VxLAN header (flags 0x08) has its reserved byte 7 zero.
func isSTUN(b []byte) bool {
	return len(b) >= 20 && b[0]&0xC0 == 0 && b[4] == 0x21 && b[5] == 0x12 && b[6] == 0xA4 && b[7] == 0x42
}

// handleSTUN processes a STUN message received from `from` (called by
// the receive loops for datagrams isSTUN accepts). Requests and answers
// that match no pending transaction are counted and ignored.
func (t *stunTable) handle(b []byte, from netip.AddrPort) {
	m := &stun.Message{Raw: append([]byte(nil), b...)}
	if err := m.Decode(); err != nil || m.Type.Method != stun.MethodBinding ||
		(m.Type.Class != stun.ClassSuccessResponse && m.Type.Class != stun.ClassErrorResponse) {
		t.stray.Add(1)
		return
	}
	t.mu.Lock()
	tx := t.pending[m.TransactionID]
	// The answer must come from the server's address (and port, unless
	// it was asked to answer from its other one).
	if tx == nil || from.Addr() != tx.server.Addr() || (!tx.changePort && from.Port() != tx.server.Port()) {
		t.mu.Unlock()
		t.stray.Add(1)
		return
	}
	delete(t.pending, m.TransactionID)
	t.mu.Unlock()
	t.answers.Add(1)
	r := stunReply{res: STUNResult{From: from}}
	if tx.changePort && from == tx.server {
		// A server that ignores CHANGE-REQUEST answers from the port
		// asked: the answer would pass any NAT and tell nothing.
		r.err = fmt.Errorf("STUN server %s ignored the change-port request (not an RFC 5780 server?)", from)
		tx.ch <- r
		return
	}
	if m.Type.Class == stun.ClassErrorResponse {
		var code stun.ErrorCodeAttribute
		if err := code.GetFrom(m); err == nil {
			r.err = fmt.Errorf("STUN server %s answered with error %d %s", from, code.Code, code.Reason)
		} else {
			r.err = fmt.Errorf("STUN server %s answered with an error", from)
		}
	} else {
		r.res.Mapped, r.err = mappedAddress(m)
		if r.err != nil {
			r.err = fmt.Errorf("STUN answer from %s: %w", from, r.err)
		}
	}
	tx.ch <- r
}

func mappedAddress(m *stun.Message) (netip.AddrPort, error) {
	var xa stun.XORMappedAddress
	if err := xa.GetFrom(m); err == nil {
		if a, ok := netip.AddrFromSlice(xa.IP); ok {
			return netip.AddrPortFrom(a.Unmap(), uint16(xa.Port)), nil
		}
	}
	var ma stun.MappedAddress
	if err := ma.GetFrom(m); err == nil {
		if a, ok := netip.AddrFromSlice(ma.IP); ok {
			return netip.AddrPortFrom(a.Unmap(), uint16(ma.Port)), nil
		}
	}
	return netip.AddrPort{}, errors.New("no mapped address in the answer")
}

func (t *stunTable) add(id [stun.TransactionIDSize]byte, tx *stunTx) {
	t.mu.Lock()
	if t.pending == nil {
		t.pending = map[[stun.TransactionIDSize]byte]*stunTx{}
	}
	t.pending[id] = tx
	t.mu.Unlock()
}

func (t *stunTable) remove(id [stun.TransactionIDSize]byte) {
	t.mu.Lock()
	delete(t.pending, id)
	t.mu.Unlock()
}

// bindingRequest builds a Binding request, with CHANGE-REQUEST change-port
// when asked, and a FINGERPRINT.
func bindingRequest(id [stun.TransactionIDSize]byte, changePort bool) ([]byte, error) {
	setters := []stun.Setter{stun.BindingRequest, stun.NewTransactionIDSetter(id)}
	if changePort {
		setters = append(setters, stun.RawAttribute{Type: attrChangeRequest, Value: []byte{0, 0, 0, changePortFlag}})
	}
	setters = append(setters, stun.Fingerprint)
	m, err := stun.Build(setters...)
	if err != nil {
		return nil, err
	}
	return m.Raw, nil
}

// WANSocket describes an open WAN socket.
type WANSocket struct {
	Interface string         `json:"interface,omitempty"`
	Local     netip.AddrPort `json:"local"` // address unspecified when bound to the interface only
	Tunnels   int            `json:"tunnels"`
}

// WANSockets lists the open WAN sockets (sorted by interface, address).
func (e *Engine) WANSockets() []WANSocket {
	snap := e.snap.Load()
	n := map[*wanSock]int{}
	for _, t := range snap.tunnels {
		n[t.wan]++
	}
	var out []WANSocket
	for k, w := range snap.wans {
		out = append(out, WANSocket{Interface: k.iface, Local: w.local(), Tunnels: n[w]})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Interface != out[j].Interface {
			return out[i].Interface < out[j].Interface
		}
		return out[i].Local.Addr().Less(out[j].Local.Addr())
	})
	return out
}

func (w *wanSock) local() netip.AddrPort {
	a := w.key.addr
	if !a.IsValid() {
		a = netip.IPv4Unspecified()
	}
	return netip.AddrPortFrom(a, w.key.port)
}

// findWAN returns the socket of a WAN named by interface or by address;
// among sockets of one interface, one bound to an address is preferred
// (it is the one tunnels use).
func (snap *snapshot) findWAN(wan string) *wanSock {
	var best *wanSock
	addr, aerr := netip.ParseAddr(wan)
	for k, w := range snap.wans {
		switch {
		case aerr == nil && k.addr == addr:
			return w
		case k.iface == wan && (best == nil || (!best.key.addr.IsValid() && k.addr.IsValid()) ||
			(best.key.addr.IsValid() == k.addr.IsValid() && k.addr.Less(best.key.addr))):
			best = w
		}
	}
	return best
}

// STUN sends a Binding request to server from the tunnel socket of wan (an
// interface name, or a WAN address) and waits for the answer, retransmitting
// (3 tries within 2 s). With changePort the request carries RFC 5780's
// CHANGE-REQUEST "change port": the server answers from its other port,
// which a NAT filtering by port drops (ErrSTUNTimeout).
func (e *Engine) STUN(ctx context.Context, wan string, server netip.AddrPort, changePort bool) (STUNResult, error) {
	server = netip.AddrPortFrom(server.Addr().Unmap(), server.Port())
	if !server.Addr().Is4() || server.Port() == 0 {
		return STUNResult{}, fmt.Errorf("STUN server %s: want an IPv4 address and port", server)
	}
	w := e.snap.Load().findWAN(wan)
	if w == nil {
		return STUNResult{}, fmt.Errorf("no tunnel socket on WAN %q (is it configured as a WAN with an address?)", wan)
	}
	var id [stun.TransactionIDSize]byte
	if _, err := rand.Read(id[:]); err != nil {
		return STUNResult{}, err
	}
	req, err := bindingRequest(id, changePort)
	if err != nil {
		return STUNResult{}, fmt.Errorf("building a STUN request: %w", err)
	}
	tx := &stunTx{server: server, changePort: changePort, ch: make(chan stunReply, 1)}
	e.stunTx.add(id, tx)
	defer e.stunTx.remove(id)
	ctx, cancel := context.WithTimeout(ctx, stunTimeout)
	defer cancel()
	start := time.Now()
	timer := time.NewTimer(0)
	defer timer.Stop()
	next := 0
	for {
		select {
		case r := <-tx.ch:
			r.res.Local = w.local()
			r.res.RTT = time.Since(start)
			return r.res, r.err
		case <-timer.C:
			if w.closed.Load() {
				return STUNResult{}, fmt.Errorf("WAN socket %s closed", w.key)
			}
			e.stunTx.requests.Add(1)
			if _, err := w.conn.WriteToUDPAddrPort(req, server); err != nil && next == 0 {
				return STUNResult{}, fmt.Errorf("sending a STUN request to %s from %s: %w", server, w.key, err)
			}
			next++
			if next < len(stunRetransmit) {
				timer.Reset(stunRetransmit[next] - time.Since(start))
			}
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return STUNResult{}, fmt.Errorf("STUN %s from %s: %w after %d tries", server, w.key, ErrSTUNTimeout, next)
			}
			return STUNResult{}, ctx.Err()
		case <-e.ctx.Done():
			return STUNResult{}, errors.New("data plane stopped")
		}
	}
}

// STUNCounters counts STUN messages on the WAN sockets.
type STUNCounters struct {
	Requests uint64 `json:"requests"` // Binding requests sent (with retransmissions)
	Answers  uint64 `json:"answers"`  // answers matched to a request
	Stray    uint64 `json:"stray"`    // STUN messages that matched no request (ignored)
}

func (t *stunTable) counters() STUNCounters {
	return STUNCounters{Requests: t.requests.Load(), Answers: t.answers.Load(), Stray: t.stray.Load()}
}

// WANsPending reports whether a configured WAN's socket could not be
// opened (Apply again to retry).
func (e *Engine) WANsPending() bool { return len(e.snap.Load().wanErrs) > 0 }

// wanErrors returns the WANs whose socket could not be opened.
func (snap *snapshot) wanErrors() map[string]string {
	if len(snap.wanErrs) == 0 {
		return nil
	}
	m := map[string]string{}
	for k, err := range snap.wanErrs {
		m[k.String()] = err
	}
	return m
}
