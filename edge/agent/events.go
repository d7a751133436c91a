package agent

import (
	"context"
	"net"

	"github.com/vishvananda/netlink"

	"github.com/trellis-sdwan/trellis/edge/netwatch"
	"github.com/trellis-sdwan/trellis/edge/sysinfo"
	"github.com/trellis-sdwan/trellis/wire/devproto"
)

var sysinfoCounters = sysinfo.Counters

// watchNetlink turns link and address notifications into events: link up
// and down (operational state transitions) and address changes.
func (a *Agent) watchNetlink(ctx context.Context) {
	done := make(chan struct{})
	defer close(done)
	subs, err := netwatch.Subscribe(done, netwatch.Links|netwatch.Addrs,
		func(err error) { a.log.Debug("netlink subscription", "err", err) })
	if err != nil {
		a.log.Warn("no events will be reported for what is not watched", "err", err)
	}
	links, addrs := subs.Links, subs.Addrs
	up := map[int]bool{}
	names := map[int]string{}
	if ls, err := netlink.LinkList(); err == nil {
		for _, l := range ls {
			up[l.Attrs().Index] = isUp(l.Attrs())
			names[l.Attrs().Index] = l.Attrs().Name
		}
	}
	for {
		select {
		case <-ctx.Done():
			return
		case u, ok := <-links:
			if !ok {
				links = nil
				continue
			}
			at := u.Attrs()
			if at.Flags&net.FlagLoopback != 0 {
				continue
			}
			names[at.Index] = at.Name
			now := isUp(at)
			was, known := up[at.Index]
			up[at.Index] = now
			if known && was == now {
				continue
			}
			kind := devproto.EventLinkDown
			if now {
				kind = devproto.EventLinkUp
			}
			if !known && !now {
				continue // a new link that is down says nothing yet
			}
			a.log.Info("link state changed", "interface", at.Name, "event", kind)
			a.send(devproto.TypeEvent, "", devproto.Event{Kind: kind, Interface: at.Name}, true)
		case u, ok := <-addrs:
			if !ok {
				addrs = nil
				continue
			}
			name := names[u.LinkIndex]
			if name == "" {
				if l, err := netlink.LinkByIndex(u.LinkIndex); err == nil {
					name = l.Attrs().Name
					names[u.LinkIndex] = name
				}
			}
			if name == "lo" || u.LinkAddress.IP.IsLinkLocalUnicast() {
				continue
			}
			verb := "removed"
			if u.NewAddr {
				verb = "added"
			}
			msg := verb + " " + u.LinkAddress.String()
			a.log.Info("address changed", "interface", name, "change", msg)
			a.send(devproto.TypeEvent, "", devproto.Event{Kind: devproto.EventAddressChange, Interface: name, Message: msg}, true)
		}
	}
}

func isUp(at *netlink.LinkAttrs) bool {
	return at.Flags&net.FlagUp != 0 && (at.OperState == netlink.OperUp || at.OperState == netlink.OperUnknown)
}
