// Package netwatch subscribes to the kernel's netlink notifications of
// links, addresses and routes for the edge's watchers (interface reports,
// link and address events, host re-sync, breakout failover), so that each
// of them states only what it does with a notification.
package netwatch

import (
	"errors"
	"fmt"

	"github.com/vishvananda/netlink"
)

// What selects the notifications to subscribe to.
type What uint8

// Kinds of notifications.
const (
	Links What = 1 << iota
	Addrs
	Routes
)

// Channel buffers: a burst (a link coming back brings its addresses and
// routes) fits without the kernel dropping notifications.
const (
	linkBuffer  = 64
	addrBuffer  = 64
	routeBuffer = 256
)

// Subs are the channels of a subscription. A channel is nil when it was
// not asked for or its subscription failed (a nil channel never fires in
// a select); a channel is closed when its subscription ends.
type Subs struct {
	Links  chan netlink.LinkUpdate
	Addrs  chan netlink.AddrUpdate
	Routes chan netlink.RouteUpdate
}

// Subscribe subscribes, in the calling thread's network namespace, to
// what until done is closed. onErr (nil: ignored) receives the errors of
// running subscriptions. The error names every subscription that failed;
// the others are in Subs all the same.
func Subscribe(done <-chan struct{}, what What, onErr func(error)) (Subs, error) {
	var s Subs
	var errs []error
	if what&Links != 0 {
		s.Links = make(chan netlink.LinkUpdate, linkBuffer)
		if err := netlink.LinkSubscribeWithOptions(s.Links, done, netlink.LinkSubscribeOptions{ErrorCallback: onErr}); err != nil {
			s.Links, errs = nil, append(errs, fmt.Errorf("watching links: %w", err))
		}
	}
	if what&Addrs != 0 {
		s.Addrs = make(chan netlink.AddrUpdate, addrBuffer)
		if err := netlink.AddrSubscribeWithOptions(s.Addrs, done, netlink.AddrSubscribeOptions{ErrorCallback: onErr}); err != nil {
			s.Addrs, errs = nil, append(errs, fmt.Errorf("watching addresses: %w", err))
		}
	}
	if what&Routes != 0 {
		s.Routes = make(chan netlink.RouteUpdate, routeBuffer)
		if err := netlink.RouteSubscribeWithOptions(s.Routes, done, netlink.RouteSubscribeOptions{ErrorCallback: onErr}); err != nil {
			s.Routes, errs = nil, append(errs, fmt.Errorf("watching routes: %w", err))
		}
	}
	return s, errors.Join(errs...)
}
