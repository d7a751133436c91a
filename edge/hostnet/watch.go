package hostnet

import (
	"net"
	"time"

	"golang.org/x/sys/unix"

	"github.com/trellis-sdwan/trellis/edge/netwatch"
)

// resyncDebounce lets a burst of netlink notifications (a link coming
// back brings its address routes, then its state) settle into one
// re-sync.
const resyncDebounce = 300 * time.Millisecond

// resyncPoll re-checks without notifications (a subscription that failed
// or overflowed).
const resyncPoll = 30 * time.Second

// watch re-syncs the host's addresses, routes and rules when the kernel
// may have taken some away: the kernel deletes every route through an
// interface that goes down (ip link set wan1 down) and does not put them
// back when it comes up again, so a WAN's default route and its policy
// table would stay missing (and the tunnels over it down) until the next
// document. A link coming up, an address appearing or going, or a route
// of the host's protocol deleted kicks a debounced Resync. Links are not
// brought up by it: a WAN an administrator set down stays down.
func (h *Host) watch() {
	done := make(chan struct{})
	defer close(done)
	subs, err := netwatch.Subscribe(done, netwatch.Links|netwatch.Addrs|netwatch.Routes,
		func(err error) { h.log.Debug("netlink subscription (host re-sync)", "err", err) })
	if err != nil {
		h.log.Warn("what a link change takes away is restored by polling where not watched", "err", err)
	}
	links, addrs, routes := subs.Links, subs.Addrs, subs.Routes
	debounce := time.NewTimer(time.Hour)
	debounce.Stop()
	defer debounce.Stop()
	poll := time.NewTicker(resyncPoll)
	defer poll.Stop()
	kick := func() { debounce.Reset(resyncDebounce) }
	lastErr := ""
	for {
		select {
		case <-h.ctx.Done():
			return
		case u, ok := <-links:
			if !ok {
				links = nil
				continue
			}
			if u.Attrs() != nil && u.Attrs().Flags&net.FlagUp != 0 && u.Header.Type == unix.RTM_NEWLINK {
				kick()
			}
		case _, ok := <-addrs:
			if !ok {
				addrs = nil
				continue
			}
			kick()
		case u, ok := <-routes:
			if !ok {
				routes = nil
				continue
			}
			if u.Type == unix.RTM_DELROUTE && u.Protocol == h.opts.Protocol {
				kick()
			}
		case <-debounce.C:
			lastErr = h.logResync(h.Resync(), lastErr)
		case <-poll.C:
			lastErr = h.logResync(h.Resync(), lastErr)
		}
	}
}

// logResync logs a re-sync's error as a warning when it is new (the same
// error on every notification, e.g. an interface the document names but
// the box lacks, is logged at debug level) and returns its text.
func (h *Host) logResync(err error, last string) string {
	if err == nil {
		return ""
	}
	if msg := err.Error(); msg != last {
		h.log.Warn("restoring host network configuration", "err", err)
		return msg
	}
	h.log.Debug("restoring host network configuration", "err", err)
	return last
}

// Resync puts back the addresses, routes and rules of the spec in force
// that are missing (removed by the kernel with a link that went down, or
// by someone else), like Apply but without bringing links up or touching
// NAT, forwarding or DHCP clients. Nothing is done before the first
// Apply, and nothing that is right is touched.
func (h *Host) Resync() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.spec.WANs) == 0 && len(h.spec.LANs) == 0 {
		return nil
	}
	err := h.syncWith(false)
	if serr := h.saveLocked(); serr != nil && err == nil {
		err = serr
	}
	return err
}
