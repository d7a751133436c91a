package wancheck

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"

	"github.com/trellis-sdwan/trellis/edge/sysinfo"
)

// echoPayload marks the edge's echoes (so that a capture tells them apart).
var echoPayload = []byte("trellis wancheck")

// maxReads bounds the packets one round reads (a raw ICMP socket sees
// every ICMP packet to its address).
const maxReads = 4096

// ICMPProber sends ICMP echoes on a raw "ip4:icmp" socket per round,
// bound to the WAN's address and interface (root or CAP_NET_RAW). Replies
// are matched by identifier (random per round), sequence number and
// source; anything else on the socket is ignored.
type ICMPProber struct{}

// Probe implements Prober.
func (ICMPProber) Probe(ctx context.Context, p Probe) ([]Answer, error) {
	if !p.Source.Is4() {
		return nil, fmt.Errorf("source %s is not an IPv4 address", p.Source)
	}
	if p.Timeout <= 0 || p.Timeout > MaxTimeout {
		return nil, fmt.Errorf("timeout %v out of range", p.Timeout)
	}
	if len(p.Targets) == 0 || len(p.Targets) > MaxTargets {
		return nil, fmt.Errorf("%d targets: want 1 to %d", len(p.Targets), MaxTargets)
	}
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		if p.Interface == "" {
			return nil
		}
		var serr error
		if err := c.Control(func(fd uintptr) { serr = unix.BindToDevice(int(fd), p.Interface) }); err != nil {
			return err
		}
		if serr != nil {
			return fmt.Errorf("binding to interface %s: %w", p.Interface, serr)
		}
		return nil
	}}
	pc, err := lc.ListenPacket(ctx, "ip4:icmp", p.Source.String())
	if err != nil {
		return nil, fmt.Errorf("opening a raw ICMP socket: %w", err)
	}
	defer pc.Close()
	stop := context.AfterFunc(ctx, func() { _ = pc.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()

	id := uint16(rand.Uint32())
	seq0 := uint16(rand.Uint32())
	answers := make([]Answer, len(p.Targets))
	sent := make([]time.Time, len(p.Targets))
	start := time.Now()
	deadline := start.Add(p.Timeout)
	if err := pc.SetReadDeadline(deadline); err != nil {
		return nil, err
	}
	pending := 0
	for i, t := range p.Targets {
		answers[i].Target = t
		m := icmp.Message{Type: ipv4.ICMPTypeEcho, Body: &icmp.Echo{ID: int(id), Seq: int(seq0 + uint16(i)), Data: echoPayload}}
		b, err := m.Marshal(nil)
		if err != nil {
			return nil, err
		}
		sent[i] = time.Now()
		if _, err := pc.WriteTo(b, &net.IPAddr{IP: t.AsSlice()}); err != nil {
			answers[i].Err = sendError(err)
			continue
		}
		pending++
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	buf := make([]byte, 1500)
	for reads := 0; pending > 0 && reads < maxReads; reads++ {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if errors.Is(err, os.ErrDeadlineExceeded) {
				break
			}
			return nil, fmt.Errorf("reading ICMP: %w", err)
		}
		now := time.Now()
		src, ok := addrOf(from)
		if !ok {
			continue
		}
		i, errText, ok := match(buf[:n], src, id, seq0, p.Targets)
		if !ok || answers[i].Answered || answers[i].Err != "" {
			continue
		}
		if errText != "" {
			answers[i].Err = errText
		} else {
			answers[i].Answered, answers[i].RTT = true, now.Sub(sent[i])
		}
		pending--
	}
	return answers, nil
}

// match tells which target a packet answers: an echo reply from the
// target with our identifier and the target's sequence number, or an ICMP
// error (destination unreachable, time exceeded) quoting our echo to it.
func match(b []byte, from netip.Addr, id, seq0 uint16, targets []netip.Addr) (int, string, bool) {
	m, err := icmp.ParseMessage(1, b)
	if err != nil {
		return 0, "", false
	}
	switch m.Type {
	case ipv4.ICMPTypeEchoReply:
		e, ok := m.Body.(*icmp.Echo)
		if !ok || uint16(e.ID) != id {
			return 0, "", false
		}
		i := int(uint16(e.Seq) - seq0)
		if i < 0 || i >= len(targets) || targets[i] != from {
			return 0, "", false
		}
		return i, "", true
	case ipv4.ICMPTypeDestinationUnreachable, ipv4.ICMPTypeTimeExceeded:
		var quoted []byte
		switch body := m.Body.(type) {
		case *icmp.DstUnreach:
			quoted = body.Data
		case *icmp.TimeExceeded:
			quoted = body.Data
		}
		dst, qid, qseq, ok := quotedEcho(quoted)
		if !ok || qid != id {
			return 0, "", false
		}
		i := int(qseq - seq0)
		if i < 0 || i >= len(targets) || targets[i] != dst {
			return 0, "", false
		}
		what := "time exceeded"
		if m.Type == ipv4.ICMPTypeDestinationUnreachable {
			what = unreachableText(m.Code)
		}
		return i, fmt.Sprintf("%s, said %s", what, from), true
	}
	return 0, "", false
}

// quotedEcho reads the IPv4 header and first 8 bytes of the echo an ICMP
// error quotes: its destination, identifier and sequence number.
func quotedEcho(b []byte) (netip.Addr, uint16, uint16, bool) {
	if len(b) < 20 || b[0]>>4 != 4 {
		return netip.Addr{}, 0, 0, false
	}
	hl := int(b[0]&0x0f) * 4
	if hl < 20 || len(b) < hl+8 || b[9] != 1 || b[hl] != byte(ipv4.ICMPTypeEcho) {
		return netip.Addr{}, 0, 0, false
	}
	dst := netip.AddrFrom4([4]byte(b[16:20]))
	return dst, binary.BigEndian.Uint16(b[hl+4:]), binary.BigEndian.Uint16(b[hl+6:]), true
}

func unreachableText(code int) string {
	switch code {
	case 0:
		return "network unreachable"
	case 1:
		return "host unreachable"
	case 9, 10, 13:
		return "administratively prohibited"
	}
	return fmt.Sprintf("destination unreachable (code %d)", code)
}

func addrOf(a net.Addr) (netip.Addr, bool) {
	ia, ok := a.(*net.IPAddr)
	if !ok {
		return netip.Addr{}, false
	}
	ip, ok := netip.AddrFromSlice(ia.IP)
	return ip.Unmap(), ok
}

// sendError shortens a send error to its cause ("network is unreachable").
func sendError(err error) string {
	var se *os.SyscallError
	if errors.As(err, &se) {
		return "sending: " + se.Err.Error()
	}
	return "sending: " + err.Error()
}

// LinkAddress is the default Resolver: the interface must exist and have
// its link up; a static address must be on it, else the interface's first
// global IPv4 address is used, one with a subnet (not a /32, such as a
// 1:1 NAT address the firewall added) first.
func LinkAddress(iface string, static netip.Addr) (netip.Addr, error) {
	l, err := netlink.LinkByName(iface)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return netip.Addr{}, fmt.Errorf("no interface %s", iface)
		}
		return netip.Addr{}, fmt.Errorf("reading interface %s: %w", iface, err)
	}
	if !sysinfo.LinkUp(l.Attrs()) {
		return netip.Addr{}, fmt.Errorf("%s: link down", iface)
	}
	as, err := netlink.AddrList(l, netlink.FAMILY_V4)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("reading the addresses of %s: %w", iface, err)
	}
	var first, host netip.Addr
	for _, a := range as {
		ip, ok := netip.AddrFromSlice(a.IP.To4())
		if !ok || !ip.IsGlobalUnicast() {
			continue
		}
		if static.IsValid() && ip == static {
			return ip, nil
		}
		ones, _ := a.Mask.Size()
		switch {
		case ones < 32 && !first.IsValid():
			first = ip
		case ones == 32 && !host.IsValid():
			host = ip
		}
	}
	if !first.IsValid() {
		first = host
	}
	switch {
	case static.IsValid():
		return netip.Addr{}, fmt.Errorf("%s: its address %s is not on the interface", iface, static)
	case !first.IsValid():
		return netip.Addr{}, fmt.Errorf("%s: no IPv4 address", iface)
	}
	return first, nil
}
