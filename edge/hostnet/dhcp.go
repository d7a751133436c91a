package hostnet

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// dhcpRun is one interface's running DHCP client.
type dhcpRun struct {
	cancel context.CancelFunc
}

// startDHCP starts the client of a WAN (h.mu held).
func (h *Host) startDHCP(name string) {
	ctx, cancel := context.WithCancel(h.ctx)
	h.clients[name] = &dhcpRun{cancel: cancel}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		h.runDHCP(ctx, name)
	}()
	h.log.Info("DHCP client started", "interface", name, "requesting", h.hints[name])
}

// bound is a lease as the client tracks it.
type bound struct {
	nl         *nclient4.Lease
	lease      Lease
	t1, t2, at time.Time // renew, rebind, expiry
}

// leaseTimes: the lease time L, T1 and T2 from the ACK (defaults L/2 and
// 7L/8, RFC 2131 4.4.5), with a sane floor.
func leaseTimes(ack *dhcpv4.DHCPv4, now time.Time) (t1, t2, end time.Time) {
	l := ack.IPAddressLeaseTime(time.Hour)
	if l < 4*time.Second {
		l = 4 * time.Second
	}
	r1 := ack.IPAddressRenewalTime(l / 2)
	r2 := ack.IPAddressRebindingTime(l * 7 / 8)
	if r1 <= 0 || r1 >= l {
		r1 = l / 2
	}
	if r2 <= r1 || r2 >= l {
		r2 = r1 + (l-r1)*3/4
	}
	return now.Add(r1), now.Add(r2), now.Add(l)
}

// leaseOf extracts address, router and server from an ACK.
func leaseOf(ack *dhcpv4.DHCPv4, end time.Time) (Lease, error) {
	ip, ok := netip.AddrFromSlice(ack.YourIPAddr)
	if !ok || !ip.Unmap().Is4() || ip.Unmap().IsUnspecified() {
		return Lease{}, fmt.Errorf("DHCP ACK without an address (yiaddr %v)", ack.YourIPAddr)
	}
	ip = ip.Unmap()
	mask := ack.SubnetMask()
	if mask == nil {
		mask = net.IP(ip.AsSlice()).DefaultMask()
	}
	ones, bits := mask.Size()
	if bits != 32 {
		return Lease{}, fmt.Errorf("DHCP ACK with a bad subnet mask %v", mask)
	}
	l := Lease{Address: netip.PrefixFrom(ip, ones), Expires: end.Unix()}
	for _, r := range ack.Router() {
		if gw, ok := netip.AddrFromSlice(r); ok {
			gw = gw.Unmap()
			if gw.Is4() && !gw.IsUnspecified() && gw != ip {
				l.Gateway = gw
				break
			}
		}
	}
	if s, ok := netip.AddrFromSlice(ack.ServerIdentifier()); ok {
		l.Server = s.Unmap()
	}
	return l, nil
}

// runDHCP is one WAN's client: discover (asking for the last address),
// request, renew at T1, rebind at T2, start over on NAK or expiry.
// Leases are installed through setLease; nothing is released when ctx
// ends.
func (h *Host) runDHCP(ctx context.Context, name string) {
	log := h.log.With("interface", name)
	ups := carrierUps(ctx, name)
	backoff := time.Second
	var cur *bound
	for ctx.Err() == nil {
		if cur == nil {
			b, err := h.discover(ctx, name)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				log.Warn("DHCP: no lease yet; retrying", "err", err, "in", backoff)
				h.expireLease(ctx, name)
				woke, ok := sleepOr(ctx, backoff, ups)
				if !ok {
					return
				}
				backoff = min(backoff*2, h.opts.DHCPMaxBackoff)
				if woke {
					log.Info("DHCP: link up; discovering at once")
					backoff = time.Second
				}
				continue
			}
			backoff = time.Second
			cur = b
			log.Info("DHCP lease obtained", "address", b.lease.Address.String(), "gateway", b.lease.Gateway, "server", b.lease.Server, "expires", b.at.Format(time.RFC3339))
			h.setLease(ctx, name, &b.lease)
			continue
		}
		// Bound: wait for T1, then renew until T2, rebind until expiry. A
		// link coming back up (another cable, another network?) renews at
		// once: a NAK there starts over.
		woke, ok := sleepOr(ctx, max(time.Until(cur.t1), 0), ups)
		if !ok {
			return
		}
		if woke {
			actx, cancel := context.WithDeadline(ctx, cur.t1)
			b, err := h.renew(actx, name, cur)
			cancel()
			var nak *nclient4.ErrNak
			switch {
			case err == nil:
				cur = b
				h.setLease(ctx, name, &cur.lease)
			case errors.As(err, &nak):
				log.Warn("DHCP: link up again and the server refused the lease (NAK); discovering again")
				cur = nil
				h.setLease(ctx, name, nil)
			}
			continue
		}
		next, nak := h.extend(ctx, name, cur)
		switch {
		case ctx.Err() != nil:
			return
		case next != nil:
			if next.lease.Address != cur.lease.Address || next.lease.Gateway != cur.lease.Gateway {
				log.Info("DHCP lease changed on renewal", "address", next.lease.Address.String(), "gateway", next.lease.Gateway)
			} else {
				log.Debug("DHCP lease renewed", "expires", next.at.Format(time.RFC3339))
			}
			cur = next
			h.setLease(ctx, name, &cur.lease)
		case nak:
			log.Warn("DHCP server refused the renewal (NAK); discovering again", "address", cur.lease.Address.String())
			cur = nil
			h.setLease(ctx, name, nil)
		default:
			log.Warn("DHCP lease expired without renewal; discovering again", "address", cur.lease.Address.String())
			cur = nil
			h.setLease(ctx, name, nil)
		}
	}
}

// extend renews (until T2) and rebinds (until expiry) a lease. It returns
// the new lease, or nak when the server refused, or neither at expiry.
func (h *Host) extend(ctx context.Context, name string, cur *bound) (*bound, bool) {
	for _, phase := range []time.Time{cur.t2, cur.at} {
		for time.Now().Before(phase) {
			actx, cancel := context.WithDeadline(ctx, phase)
			b, err := h.renew(actx, name, cur)
			cancel()
			if err == nil {
				return b, false
			}
			if ctx.Err() != nil {
				return nil, false
			}
			var nak *nclient4.ErrNak
			if errors.As(err, &nak) {
				return nil, true
			}
			h.log.Debug("DHCP renewal unanswered", "interface", name, "err", err)
			// RFC 2131 4.4.5: wait half the remaining time, at least 1 s.
			wait := max(time.Until(phase)/2, time.Second)
			if !sleep(ctx, min(wait, time.Until(phase), 60*time.Second)) {
				return nil, false
			}
		}
	}
	return nil, false
}

func (h *Host) client(name string) (*nclient4.Client, error) {
	c, err := nclient4.New(name, nclient4.WithTimeout(h.opts.DHCPTimeout), nclient4.WithRetry(3))
	if err != nil {
		return nil, fmt.Errorf("DHCP client on %s: %w", name, err)
	}
	return c, nil
}

// discover runs DISCOVER/OFFER/REQUEST/ACK, asking for the last address.
// The raw socket is open only during the exchange (it sees every IPv4
// packet of the interface).
func (h *Host) discover(ctx context.Context, name string) (*bound, error) {
	c, err := h.client(name)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	h.mu.Lock()
	hint := h.hints[name]
	h.mu.Unlock()
	var mods []dhcpv4.Modifier
	if hint.IsValid() {
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(hint.AsSlice())))
	}
	offer, err := c.DiscoverOffer(ctx, mods...)
	if err != nil {
		return nil, err
	}
	nl, err := c.RequestFromOffer(ctx, offer)
	if err != nil {
		return nil, err
	}
	return boundOf(nl)
}

func (h *Host) renew(ctx context.Context, name string, cur *bound) (*bound, error) {
	c, err := h.client(name)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	nl, err := c.Renew(ctx, cur.nl)
	if err != nil {
		return nil, err
	}
	return boundOf(nl)
}

func boundOf(nl *nclient4.Lease) (*bound, error) {
	t1, t2, end := leaseTimes(nl.ACK, time.Now())
	l, err := leaseOf(nl.ACK, end)
	if err != nil {
		return nil, err
	}
	return &bound{nl: nl, lease: l, t1: t1, t2: t2, at: end}, nil
}

// setLease installs (or, nil, removes) a WAN's lease and reports a change
// of address or gateway. A client whose context ended changes nothing.
func (h *Host) setLease(ctx context.Context, name string, l *Lease) {
	h.mu.Lock()
	if ctx.Err() != nil {
		h.mu.Unlock()
		return
	}
	old, had := h.own.Leases[name]
	if l == nil {
		delete(h.own.Leases, name)
	} else {
		h.own.Leases[name] = *l
		h.hints[name] = l.Address.Addr()
	}
	err := h.syncLocked()
	if serr := h.saveLocked(); serr != nil {
		err = errors.Join(err, serr)
	}
	h.mu.Unlock()
	if err != nil {
		h.log.Warn("DHCP lease not fully installed", "interface", name, "err", err)
	}
	ch := Change{Interface: name}
	if l != nil {
		ch.Address, ch.Gateway = l.Address, l.Gateway
	}
	if had == (l != nil) && (l == nil || (old.Address == l.Address && old.Gateway == l.Gateway)) {
		return
	}
	if h.opts.OnChange != nil {
		h.opts.OnChange(ch)
	}
}

// expireLease removes an installed lease (from an earlier run) once it
// has expired while no server answers.
func (h *Host) expireLease(ctx context.Context, name string) {
	h.mu.Lock()
	l, ok := h.own.Leases[name]
	h.mu.Unlock()
	if ok && time.Now().Unix() >= l.Expires {
		h.log.Warn("DHCP lease expired; removing its address", "interface", name, "address", l.Address.String())
		h.setLease(ctx, name, nil)
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// sleepOr sleeps d unless ctx ends (ok false) or wake fires (woke true).
func sleepOr(ctx context.Context, d time.Duration, wake <-chan struct{}) (woke, ok bool) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false, false
	case <-wake:
		return true, true
	case <-t.C:
		return false, true
	}
}

// carrierUps signals (coalesced) each time the link name comes up:
// administratively up with its carrier. Nil when links cannot be watched.
func carrierUps(ctx context.Context, name string) <-chan struct{} {
	updates := make(chan netlink.LinkUpdate, 64)
	if err := netlink.LinkSubscribeWithOptions(updates, ctx.Done(), netlink.LinkSubscribeOptions{}); err != nil {
		return nil
	}
	was := false
	if l, err := netlink.LinkByName(name); err == nil {
		was = carrier(l.Attrs())
	}
	out := make(chan struct{}, 1)
	go func() {
		for u := range updates { // closed when ctx ends
			a := u.Attrs()
			if a.Name != name {
				continue
			}
			now := carrier(a)
			if now && !was {
				select {
				case out <- struct{}{}:
				default:
				}
			}
			was = now
		}
	}()
	return out
}

func carrier(a *netlink.LinkAttrs) bool {
	return a.Flags&net.FlagUp != 0 && a.RawFlags&unix.IFF_LOWER_UP != 0
}
