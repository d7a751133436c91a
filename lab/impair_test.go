package lab

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/trellis-sdwan/trellis/lab/relay"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

func mustNS(t *testing.T, name string) netns.NsHandle {
	t.Helper()
	h, err := netns.GetFromName(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// TestRelayImpairment measures what the impairment relay on a real WAN link
// (edge ⇄ relay ⇄ ISP router) does, always against a reference measured in
// the same test on the same link.
func TestRelayImpairment(t *testing.T) {
	needRoot(t)
	top, err := FromSimple(Simple{Sites: 1, WANs: 1, LANs: 1, Hosts: 1})
	if err != nil {
		t.Fatal(err)
	}
	l, _ := upLab(t, top, true)
	p, st := l.Plan, l.State
	edge, _ := p.Node("s1/edge")
	isp, _ := p.Node("s1/isp1")
	ispAddr, edgeAddr := Access(1, 1, NATNone)
	gw := ispAddr.Addr()
	const link = "s1/wan1"
	ctx := context.Background()

	set := func(u relay.Update) relay.Reply {
		t.Helper()
		rep, err := Impair(ctx, st, link, u)
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
	stats := func() relay.Stats {
		t.Helper()
		rep, err := LinkStatus(ctx, st, link)
		if err != nil {
			t.Fatal(err)
		}
		return rep.Stats["edge->isp"]
	}
	f := func(v float64) *float64 { return &v }
	d := func(v time.Duration) *time.Duration { return &v }
	u := func(v uint64) *uint64 { return &v }
	b := func(v bool) *bool { return &v }

	// The link works unimpaired (this also settles ARP).
	mustPing(t, edge.NS, gw)

	t.Run("loss", func(t *testing.T) {
		t.Cleanup(func() { set(relay.Update{Clear: true}) })
		rx := udpIn(t, isp.NS, netip.AddrPortFrom(gw, 7000).String())
		tx := udpIn(t, edge.NS, netip.AddrPortFrom(edgeAddr.Addr(), 0).String())
		dst := netip.AddrPortFrom(gw, 7000)
		// Count concurrently so the socket buffer never overflows.
		counted := make(chan int, 1)
		var received atomic.Int64
		go func() {
			buf := make([]byte, 100)
			_ = rx.SetReadDeadline(time.Now().Add(60 * time.Second))
			for {
				m, _, err := rx.ReadFromUDPAddrPort(buf)
				if err != nil {
					counted <- -1
					return
				}
				if string(buf[:m]) == "marker" {
					counted <- int(received.Load())
					return
				}
				received.Add(1)
			}
		}()
		set(relay.Update{LossPct: f(20)})
		before := stats()
		const n, batch = 2000, 100
		for i := 0; i < n; i += batch {
			for j := i; j < i+batch; j++ {
				send(t, tx, dst, fmt.Sprintf("data %d", j))
			}
			// Pace so no queue overflows: the next batch goes once every
			// datagram sent is either received or counted lost by the relay.
			if err := waitFor(ctx, 20*time.Second, func() error {
				s := stats()
				if done := received.Load() + int64(s.DroppedLoss-before.DroppedLoss); done < int64(i+batch) {
					return fmt.Errorf("%d of %d datagrams received or lost", done, i+batch)
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
		}
		set(relay.Update{LossPct: f(0)})
		// The relay is FIFO: once a marker sent after the data is in,
		// every data datagram that survived is in too.
		send(t, tx, dst, "marker")
		got := <-counted
		if got < 0 {
			t.Fatal("marker never arrived")
		}
		after := stats()
		lost := n - got
		frac := float64(lost) / n
		t.Logf("loss 20%%: %d of %d datagrams lost (%.1f%%), relay counted %d", lost, n, 100*frac, after.DroppedLoss-before.DroppedLoss)
		// sd of the loss fraction over 2000 datagrams is 0.9 points.
		if frac < 0.15 || frac > 0.25 {
			t.Errorf("measured loss %.3f, want 0.20±0.05", frac)
		}
		// Under heavy machine load the kernel may drop a few datagrams of
		// its own (socket buffers), so the receiver can see slightly more
		// loss than the relay caused; it must never see much less.
		if c := int(after.DroppedLoss - before.DroppedLoss); lost < c-10 || lost > c+n/50 {
			t.Errorf("relay counted %d losses, receiver saw %d", c, lost)
		}
	})

	t.Run("delay and jitter", func(t *testing.T) {
		t.Cleanup(func() { set(relay.Update{Clear: true}) })
		rtts := func(k int) []time.Duration {
			var out []time.Duration
			for range k {
				out = append(out, mustPing(t, edge.NS, gw))
			}
			slices.Sort(out)
			return out
		}
		ref := rtts(9)
		const delay = 25 * time.Millisecond
		set(relay.Update{Delay: d(delay)})
		slow := rtts(5)
		t.Logf("RTT unimpaired median %v; with %v delay each way min %v median %v", ref[4], delay, slow[0], slow[2])
		if slow[0] < 2*delay {
			t.Errorf("RTT %v with %v each way; the relay released a frame early", slow[0], delay)
		}
		if slow[0] <= ref[4] {
			t.Errorf("delayed RTT %v not above the reference %v", slow[0], ref[4])
		}
		// With jitter larger than the delay, datagrams still arrive in order.
		set(relay.Update{Delay: d(2 * time.Millisecond), Jitter: d(5 * time.Millisecond)})
		rx := udpIn(t, isp.NS, netip.AddrPortFrom(gw, 7001).String())
		tx := udpIn(t, edge.NS, netip.AddrPortFrom(edgeAddr.Addr(), 0).String())
		const n = 200
		msg := make([]byte, 8)
		for i := range n {
			binary.BigEndian.PutUint64(msg, uint64(i))
			if _, err := tx.WriteToUDPAddrPort(msg, netip.AddrPortFrom(gw, 7001)); err != nil {
				t.Fatal(err)
			}
		}
		buf := make([]byte, 64)
		for i := range n {
			_ = rx.SetReadDeadline(time.Now().Add(5 * time.Second))
			m, _, err := rx.ReadFromUDPAddrPort(buf)
			if err != nil {
				t.Fatalf("datagram %d: %v", i, err)
			}
			if got := binary.BigEndian.Uint64(buf[:m]); got != uint64(i) {
				t.Fatalf("datagram %d arrived at position %d: reordered", got, i)
			}
		}
	})

	t.Run("rate", func(t *testing.T) {
		t.Cleanup(func() { set(relay.Update{Clear: true}) })
		throughput := func(size int) float64 {
			t.Helper()
			var ln net.Listener
			if err := InNamespace(isp.NS, func() (err error) {
				ln, err = net.Listen("tcp4", netip.AddrPortFrom(gw, 7002).String())
				return err
			}); err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			type result struct {
				n   int64
				dur time.Duration
				err error
			}
			res := make(chan result, 1)
			go func() {
				c, err := ln.Accept()
				if err != nil {
					res <- result{err: err}
					return
				}
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(60 * time.Second))
				start := time.Now()
				n, err := io.Copy(io.Discard, c)
				res <- result{n, time.Since(start), err}
			}()
			var c net.Conn
			if err := InNamespace(edge.NS, func() (err error) {
				c, err = net.DialTimeout("tcp4", netip.AddrPortFrom(gw, 7002).String(), 10*time.Second)
				return err
			}); err != nil {
				t.Fatal(err)
			}
			_ = c.SetDeadline(time.Now().Add(60 * time.Second))
			if _, err := c.Write(make([]byte, size)); err != nil {
				t.Fatal(err)
			}
			c.Close()
			r := <-res
			if r.err != nil || r.n != int64(size) {
				t.Fatalf("transfer: %d of %d bytes: %v", r.n, size, r.err)
			}
			return float64(r.n*8) / r.dur.Seconds()
		}
		ref := throughput(4 << 20)
		const rate = 4e6
		set(relay.Update{RateBps: u(rate)})
		limited := throughput(512 << 10)
		t.Logf("TCP goodput unimpaired %.1f Mbit/s; limited to 4mbit: %.2f Mbit/s", ref/1e6, limited/1e6)
		if limited > rate*1.2 {
			t.Errorf("goodput %.2f Mbit/s exceeds the 4 Mbit/s limit", limited/1e6)
		}
		if ref < 3*limited {
			t.Errorf("unimpaired %.1f Mbit/s not well above limited %.1f Mbit/s", ref/1e6, limited/1e6)
		}
	})

	t.Run("relay survives its interface flapping", func(t *testing.T) {
		rl, _ := p.Node(link)
		h, err := netlink.NewHandleAt(mustNS(t, rl.NS))
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		ifc, err := h.LinkByName("edge")
		if err != nil {
			t.Fatal(err)
		}
		if err := h.LinkSetDown(ifc); err != nil {
			t.Fatal(err)
		}
		if err := h.LinkSetUp(ifc); err != nil {
			t.Fatal(err)
		}
		mustPing(t, edge.NS, gw)
		if _, err := LinkStatus(ctx, st, link); err != nil {
			t.Errorf("relay gone after its interface flapped: %v", err)
		}
	})

	t.Run("one direction down", func(t *testing.T) {
		t.Cleanup(func() { set(relay.Update{Clear: true}) })
		rep := set(relay.Update{Dir: DirDownload, Down: b(true)})
		if rep.Symmetric() || !rep.Impairments[DirDownload].Down || rep.Impairments[DirUpload].Down {
			t.Fatalf("impairments %+v", rep.Impairments)
		}
		before := stats()
		if _, err := Ping(ctx, edge.NS, gw, 2, 100*time.Millisecond); err == nil {
			t.Error("ping answered with the download direction down")
		}
		// The requests went out; the replies were dropped.
		if s := stats(); s.TxFrames <= before.TxFrames {
			t.Errorf("upload carried nothing: %+v", s)
		}
		rep, err := LinkStatus(ctx, st, link)
		if err != nil || rep.Stats[DirDownload].DroppedDown == 0 {
			t.Errorf("download drops %+v (%v)", rep.Stats[DirDownload], err)
		}
	})

	t.Run("down and up", func(t *testing.T) {
		t.Cleanup(func() { set(relay.Update{Clear: true}) })
		set(relay.Update{Down: b(true)})
		// Let anything already in the relay drain before the reference.
		if err := waitFor(ctx, 10*time.Second, func() error {
			if s := stats(); s.Queued != 0 || s.QueuedBytes != 0 {
				return fmt.Errorf("relay still holds %d frames", s.Queued)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		before := stats()
		if _, err := Ping(ctx, edge.NS, gw, 3, 100*time.Millisecond); err == nil {
			t.Error("ping crossed a link that is down")
		}
		if s := stats(); s.DroppedDown <= before.DroppedDown || s.TxFrames != before.TxFrames {
			t.Errorf("while down: stats %+v (before %+v)", s, before)
		}
		set(relay.Update{Down: b(false)})
		mustPing(t, edge.NS, gw)
	})
}
