// Package natprobe finds a WAN's public endpoint and NAT type with STUN
// (RFC 5389, with RFC 5780's change-port test), asking from the WAN's
// tunnel socket through a Client (the data plane engine). Server 1 is
// asked on its ports A and B (manage's STUN server: the first two
// configured servers).
//
// Mapping (what peers must send to):
//
//  1. Binding to A. The mapped endpoint is the public endpoint. If it is
//     the socket's own address and port: no NAT ("none").
//  2. Binding to B. Another mapped endpoint than A's: the mapping changes
//     per destination ("symmetric"); the same: endpoint-independent
//     mapping, reported "restricted" until filtering is known.
//
// Filtering, asked separately: Binding to A with CHANGE-REQUEST "change
// port"; the answer comes from B. It arrives through a NAT that does not
// filter by port ("full-cone"), not through a port-restricted one
// ("restricted"). Combine merges both.
//
// The two cannot run back to back with one server address. After step 2
// the NAT has a pinhole for B, so the change-port answer would pass any
// NAT; and when the change-port answer came first and was dropped, a
// Linux NAT gives the next request to B another port (the conntrack entry
// of the dropped packet holds the first one), which looks symmetric. So
// the filtering question must be asked when no pinhole for B is left
// (Linux forgets a UDP exchange after 30 s) and no mapping test must
// follow it within that time: the agent interleaves them (QuietTime).
// Only one server answering gives "unknown" (with its mapping), none
// "blocked".
package natprobe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/trellis-sdwan/trellis/edge/dataplane"
	"github.com/trellis-sdwan/trellis/wire/devproto"
)

// Client sends one STUN Binding request from a WAN's tunnel socket and
// waits for the answer (*dataplane.Engine implements it).
type Client interface {
	STUN(ctx context.Context, wan string, server netip.AddrPort, changePort bool) (dataplane.STUNResult, error)
}

// Result is the outcome of one check of a WAN.
type Result struct {
	WAN    string
	Mapped netip.AddrPort // public endpoint (invalid when no server answered)
	NAT    string         // devproto.NAT* constant
	Server string         // the server whose mapping is reported
	// CheckedAt is when the check ended; Took how long it ran.
	CheckedAt time.Time
	Took      time.Duration
	Err       string // why the check failed or is incomplete
}

// Public converts the result for the interface report.
func (r Result) Public() *devproto.PublicEndpoint {
	p := &devproto.PublicEndpoint{NAT: r.NAT, Server: OneLine(r.Server, MaxText), CheckedAt: r.CheckedAt.UTC(), Error: OneLine(r.Err, MaxText)}
	if r.Mapped.IsValid() {
		p.Address, p.Port = r.Mapped.Addr().String(), int(r.Mapped.Port())
	}
	return p
}

// Same reports whether two results say the same thing (ignoring when
// they were made).
func (r Result) Same(o Result) bool {
	return r.WAN == o.WAN && r.Mapped == o.Mapped && r.NAT == o.NAT && r.Server == o.Server && r.Err == o.Err
}

// answer is one probe's outcome.
type answer struct {
	ok  bool
	res dataplane.STUNResult
	err error
}

// QuietTime is how long a NAT keeps the pinhole of one STUN exchange (30 s
// on Linux, plus a margin): a filtering question is asked at least that
// long after a mapping test, and a mapping test at least that long after
// a filtering question.
const QuietTime = 32 * time.Second

// StreamQuietTime is how long a Linux NAT keeps the pinhole of a UDP flow
// that saw answers for more than 2 s (conntrack "assured", the stream
// timeout of 120 s, plus a margin): two mapping tests to the same server
// port less than QuietTime apart make one. A filtering question answered
// from that port is not asked before it expired.
const StreamQuietTime = 122 * time.Second

// Mapping runs the mapping test of one WAN. locals are the WAN's own
// addresses (used when its socket is bound to the interface only).
func Mapping(ctx context.Context, c Client, wan string, servers []netip.AddrPort, locals []netip.Addr) Result {
	start := time.Now()
	r := mapping(ctx, c, wan, servers, locals)
	r.WAN = wan
	r.CheckedAt = time.Now()
	r.Took = r.CheckedAt.Sub(start)
	return r
}

func mapping(ctx context.Context, c Client, wan string, servers []netip.AddrPort, locals []netip.Addr) Result {
	if len(servers) == 0 {
		return Result{NAT: devproto.NATUnknown, Err: "no STUN server configured"}
	}
	ask := func(s netip.AddrPort) answer {
		res, err := c.STUN(ctx, wan, s, false)
		return answer{ok: err == nil, res: res, err: err}
	}
	a := ask(servers[0])
	if ctx.Err() != nil {
		return Result{NAT: devproto.NATUnknown, Err: ctx.Err().Error()}
	}
	if !a.ok {
		// Server 1 is silent: any other server gives at least a mapping.
		errs := []string{a.err.Error()}
		for _, s := range servers[1:] {
			o := ask(s)
			if o.ok {
				return Result{NAT: devproto.NATUnknown, Mapped: o.res.Mapped, Server: s.String(),
					Err: fmt.Sprintf("only some STUN servers answered: %v", a.err)}
			}
			errs = append(errs, o.err.Error())
		}
		return Result{NAT: devproto.NATBlocked, Err: "no STUN server answered: " + strings.Join(errs, "; ")}
	}
	var b answer
	if !isLocal(a.res, locals) && len(servers) > 1 {
		b = ask(servers[1])
	}
	return classify(servers, a, b, locals)
}

// classify decides the NAT type from the answers of server 1 (a) and
// server 2 (b; not asked when only one server is configured).
func classify(servers []netip.AddrPort, a, b answer, locals []netip.Addr) Result {
	r := Result{Mapped: a.res.Mapped, Server: servers[0].String()}
	switch {
	case isLocal(a.res, locals):
		r.NAT = devproto.NATNone
	case len(servers) < 2:
		r.NAT = devproto.NATUnknown
		r.Err = "one STUN server configured: the mapping behaviour is not tested"
	case !b.ok:
		r.NAT = devproto.NATUnknown
		r.Err = fmt.Sprintf("only %s answered: %v", servers[0], b.err)
	case b.res.Mapped != a.res.Mapped:
		r.NAT = devproto.NATSymmetric
	default:
		r.NAT = devproto.NATRestricted // until Filtering says otherwise
	}
	return r
}

// Filter is what the filtering question found.
type Filter int

// Filtering outcomes.
const (
	FilterUnknown Filter = iota // not asked (or the server failed)
	FilterOpen                  // the answer from the other port arrived
	FilterPort                  // it did not: the NAT filters by port
)

func (f Filter) String() string {
	return [...]string{"unknown", "open", "port"}[f]
}

// Filtering asks server (port A of server 1) to answer from its other
// port, from the WAN's tunnel socket. Ask it only when the NAT has no
// pinhole for that other port (QuietTime after a mapping test).
func Filtering(ctx context.Context, c Client, wan string, server netip.AddrPort) (Filter, error) {
	_, err := c.STUN(ctx, wan, server, true)
	switch {
	case err == nil:
		return FilterOpen, nil
	case errors.Is(err, dataplane.ErrSTUNTimeout):
		return FilterPort, nil
	default:
		return FilterUnknown, err
	}
}

// Combine reports a mapping result with what filtering found: an
// endpoint-independent mapping through a NAT that does not filter by port
// is "full-cone".
func Combine(m Result, f Filter) Result {
	if f == FilterOpen && (m.NAT == devproto.NATRestricted || m.NAT == devproto.NATFullCone) {
		m.NAT = devproto.NATFullCone
	}
	return m
}

// isLocal reports whether the mapped endpoint is the socket's own.
func isLocal(res dataplane.STUNResult, locals []netip.Addr) bool {
	m := res.Mapped
	if !m.IsValid() || m.Port() != res.Local.Port() {
		return false
	}
	if res.Local.Addr().IsValid() && !res.Local.Addr().IsUnspecified() {
		return m.Addr() == res.Local.Addr()
	}
	for _, l := range locals {
		if l == m.Addr() {
			return true
		}
	}
	return false
}

// ResolveServers turns "host:port" entries into IPv4 endpoints; names are
// resolved (the first IPv4 address). Entries that cannot be used are
// reported in the error, the others returned in order.
func ResolveServers(ctx context.Context, entries []string) ([]netip.AddrPort, error) {
	var out []netip.AddrPort
	var errs []error
	for _, e := range entries {
		host, port, err := net.SplitHostPort(e)
		if err != nil {
			errs = append(errs, fmt.Errorf("STUN server %q: want host:port: %w", e, err))
			continue
		}
		p, err := strconv.ParseUint(port, 10, 16)
		if err != nil || p == 0 {
			errs = append(errs, fmt.Errorf("STUN server %q: bad port", e))
			continue
		}
		if a, err := netip.ParseAddr(host); err == nil {
			if !a.Unmap().Is4() {
				errs = append(errs, fmt.Errorf("STUN server %q: tunnels are IPv4, want an IPv4 server", e))
				continue
			}
			out = append(out, netip.AddrPortFrom(a.Unmap(), uint16(p)))
			continue
		}
		rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		addrs, err := net.DefaultResolver.LookupNetIP(rctx, "ip4", host)
		cancel()
		if err != nil || len(addrs) == 0 {
			errs = append(errs, fmt.Errorf("STUN server %q: resolving: %v", e, err))
			continue
		}
		out = append(out, netip.AddrPortFrom(addrs[0].Unmap(), uint16(p)))
	}
	return out, errors.Join(errs...)
}
