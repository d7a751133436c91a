// Package natprobe finds a WAN's public endpoint and NAT type with STUN
// (RFC 5389, with RFC 5780's change-port test), asking from the WAN's
// tunnel socket through a Client (the data plane engine).
//
// The test, with server 1 on ports A and B (manage's STUN server, the
// first two configured servers):
//
//  1. Binding to A. The mapped endpoint is the public endpoint. If it is
//     the socket's own address and port: no NAT ("none").
//  2. Binding to A with CHANGE-REQUEST "change port": the answer comes
//     from B, to which nothing was sent yet, so it only passes a NAT that
//     does not filter by port ("full-cone" if the mapping is also
//     endpoint-independent).
//  3. Binding to B. Another mapped endpoint than A's: the mapping changes
//     per destination ("symmetric"). The same one: "full-cone" when step 2
//     was answered, else "restricted".
//
// Only one server answering gives "unknown" (with its mapping), none
// "blocked". Step 2 runs before step 3 on purpose: after step 3 the NAT
// has a pinhole for B, and the change-port answer would pass any NAT.
package natprobe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
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
	p := &devproto.PublicEndpoint{NAT: r.NAT, Server: r.Server, CheckedAt: r.CheckedAt.UTC(), Error: r.Err}
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

// Detect checks one WAN. locals are the WAN's own addresses (used when
// its socket is bound to the interface only).
func Detect(ctx context.Context, c Client, wan string, servers []netip.AddrPort, locals []netip.Addr) Result {
	start := time.Now()
	r := detect(ctx, c, wan, servers, locals)
	r.WAN = wan
	r.CheckedAt = time.Now()
	r.Took = r.CheckedAt.Sub(start)
	return r
}

func detect(ctx context.Context, c Client, wan string, servers []netip.AddrPort, locals []netip.Addr) Result {
	if len(servers) == 0 {
		return Result{NAT: devproto.NATUnknown, Err: "no STUN server configured"}
	}
	ask := func(s netip.AddrPort, change bool) answer {
		res, err := c.STUN(ctx, wan, s, change)
		return answer{ok: err == nil, res: res, err: err}
	}
	a := ask(servers[0], false)
	if ctx.Err() != nil {
		return Result{NAT: devproto.NATUnknown, Err: ctx.Err().Error()}
	}
	if !a.ok {
		// Server 1 is silent: any other server gives at least a mapping.
		errs := []error{a.err}
		for _, s := range servers[1:] {
			if o := ask(s, false); o.ok {
				return Result{NAT: devproto.NATUnknown, Mapped: o.res.Mapped, Server: s.String(),
					Err: fmt.Sprintf("only some STUN servers answered: %v", a.err)}
			} else {
				errs = append(errs, o.err)
			}
		}
		return Result{NAT: devproto.NATBlocked, Err: errors.Join(errs...).Error()}
	}
	var (
		change answer
		b      answer
	)
	if !isLocal(a.res, locals) {
		change = ask(servers[0], true)
		if len(servers) > 1 {
			b = ask(servers[1], false)
		}
	}
	return classify(servers, a, change, b, locals)
}

// classify decides the NAT type from the three answers (see the package
// documentation): a to server 1, change to server 1 with change-port, b
// to server 2 (not asked when only one server is configured).
func classify(servers []netip.AddrPort, a, change, b answer, locals []netip.Addr) Result {
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
	case change.ok:
		r.NAT = devproto.NATFullCone
	default:
		r.NAT = devproto.NATRestricted
	}
	return r
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
