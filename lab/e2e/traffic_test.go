package e2e

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"

	"github.com/trellis-sdwan/trellis/lab"
	"github.com/trellis-sdwan/trellis/lab/labtest"
)

// Traffic helpers: every socket is opened inside a lab namespace and
// only ever talks to addresses of the lab.

// listenIn listens on TCP port inside the namespace of node.
func listenIn(t *testing.T, l *lab.Lab, node string, port int) net.Listener {
	t.Helper()
	var ln net.Listener
	err := lab.InNamespace(labtest.NS(t, l, node), func() error {
		var err error
		ln, err = net.Listen("tcp4", fmt.Sprintf("0.0.0.0:%d", port))
		return err
	})
	if err != nil {
		t.Fatalf("listening in %s: %v", node, err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// dialIn connects from the namespace of node.
func dialIn(ctx context.Context, t *testing.T, l *lab.Lab, node string, addr netip.AddrPort) (net.Conn, error) {
	t.Helper()
	var c net.Conn
	err := lab.InNamespace(labtest.NS(t, l, node), func() error {
		var d net.Dialer
		var err error
		c, err = d.DialContext(ctx, "tcp4", addr.String())
		return err
	})
	return c, err
}

// sink accepts connections and counts the bytes they carry.
type sink struct {
	n    atomic.Int64
	wg   sync.WaitGroup
	errc chan error
}

func serveSink(ln net.Listener) *sink {
	s := &sink{errc: make(chan error, 16)}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer c.Close()
				buf := make([]byte, 64<<10)
				for {
					n, err := c.Read(buf)
					s.n.Add(int64(n))
					if err != nil {
						if !errors.Is(err, io.EOF) {
							s.errc <- err
						}
						return
					}
				}
			}()
		}
	}()
	return s
}

// transfer sends n bytes of payload (repeated) over one TCP connection
// from node to dst and waits until the sink counted them all.
func transfer(ctx context.Context, t *testing.T, l *lab.Lab, from string, dst netip.AddrPort, s *sink, n int, payload []byte) {
	t.Helper()
	before := s.n.Load()
	c, err := dialIn(ctx, t, l, from, dst)
	if err != nil {
		t.Fatalf("TCP %s → %s: %v", from, dst, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(60 * time.Second))
	for sent := 0; sent < n; {
		chunk := payload
		if len(chunk) > n-sent {
			chunk = chunk[:n-sent]
		}
		m, err := c.Write(chunk)
		sent += m
		if err != nil {
			t.Fatalf("TCP %s → %s after %d bytes: %v", from, dst, sent, err)
		}
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	labtest.WaitFor(t, 60*time.Second, fmt.Sprintf("%d bytes %s → %s received", n, from, dst), func() error {
		if got := s.n.Load() - before; got < int64(n) {
			return fmt.Errorf("%d received", got)
		}
		return nil
	})
}

// stream keeps one TCP connection busy at a bounded rate until stopped.
type stream struct {
	sent   atomic.Int64
	stop   chan struct{}
	done   chan struct{}
	err    error
	conn   net.Conn
	closed atomic.Bool
}

func startStream(ctx context.Context, t *testing.T, l *lab.Lab, from string, dst netip.AddrPort, bytesPerSec int) *stream {
	t.Helper()
	c, err := dialIn(ctx, t, l, from, dst)
	if err != nil {
		t.Fatalf("TCP %s → %s: %v", from, dst, err)
	}
	st := &stream{stop: make(chan struct{}), done: make(chan struct{}), conn: c}
	chunk := make([]byte, 8<<10)
	every := time.Duration(int64(time.Second) * int64(len(chunk)) / int64(bytesPerSec))
	go func() {
		defer close(st.done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-st.stop:
				return
			case <-tick.C:
			}
			_ = c.SetWriteDeadline(time.Now().Add(60 * time.Second))
			n, err := c.Write(chunk)
			st.sent.Add(int64(n))
			if err != nil {
				st.err = err
				return
			}
		}
	}()
	t.Cleanup(func() { st.Stop() })
	return st
}

// Stop ends the stream and returns the write error, if any.
func (s *stream) Stop() error {
	if s.closed.CompareAndSwap(false, true) {
		close(s.stop)
		<-s.done
		s.conn.Close()
	}
	return s.err
}

// pinger sends an ICMP echo every interval and records the replies.
type pinger struct {
	conn  *icmp.PacketConn
	dst   netip.Addr
	every time.Duration
	mu    sync.Mutex
	sent  map[int]time.Time
	got   map[int]time.Time
	stop  chan struct{}
	wg    sync.WaitGroup
	once  sync.Once
}

func startPinger(t *testing.T, l *lab.Lab, node string, dst netip.Addr, every time.Duration) *pinger {
	t.Helper()
	p := &pinger{dst: dst, every: every, sent: map[int]time.Time{}, got: map[int]time.Time{}, stop: make(chan struct{})}
	err := lab.InNamespace(labtest.NS(t, l, node), func() error {
		var err error
		p.conn, err = icmp.ListenPacket("ip4:icmp", "0.0.0.0")
		return err
	})
	if err != nil {
		t.Fatalf("ICMP socket in %s: %v", node, err)
	}
	id := os.Getpid()&0xffff ^ 0x5a5a
	p.wg.Add(2)
	go func() { // sender
		defer p.wg.Done()
		tick := time.NewTicker(every)
		defer tick.Stop()
		for seq := 1; ; seq++ {
			msg := icmp.Message{Type: ipv4.ICMPTypeEcho, Body: &icmp.Echo{ID: id, Seq: seq & 0xffff, Data: []byte("trellis-e2e")}}
			b, _ := msg.Marshal(nil)
			p.mu.Lock()
			p.sent[seq&0xffff] = time.Now()
			p.mu.Unlock()
			_, _ = p.conn.WriteTo(b, &net.IPAddr{IP: dst.AsSlice()})
			select {
			case <-p.stop:
				return
			case <-tick.C:
			}
		}
	}()
	go func() { // receiver
		defer p.wg.Done()
		buf := make([]byte, 1500)
		for {
			n, from, err := p.conn.ReadFrom(buf)
			if err != nil {
				return
			}
			m, err := icmp.ParseMessage(1, buf[:n])
			if err != nil || m.Type != ipv4.ICMPTypeEchoReply {
				continue
			}
			e, ok := m.Body.(*icmp.Echo)
			if !ok || e.ID != id {
				continue
			}
			if ip, ok := from.(*net.IPAddr); !ok || !ip.IP.Equal(dst.AsSlice()) {
				continue
			}
			p.mu.Lock()
			if _, dup := p.got[e.Seq]; !dup {
				p.got[e.Seq] = time.Now()
			}
			p.mu.Unlock()
		}
	}()
	t.Cleanup(func() { p.Stop() })
	return p
}

// Stop ends the pinger.
func (p *pinger) Stop() {
	p.once.Do(func() {
		close(p.stop)
		p.conn.Close()
		p.wg.Wait()
	})
}

// repliedSince reports whether an echo sent after at was answered.
func (p *pinger) repliedSince(at time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for seq, r := range p.got {
		if s, ok := p.sent[seq]; ok && s.After(at) && !r.IsZero() {
			return true
		}
	}
	return false
}

// summary returns sent and answered echoes (the last second of sends is
// left out: their answers may still be under way) and the longest time
// without an answer between two answered echoes.
func (p *pinger) summary() (sent, answered int, gap time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var last time.Time
	for _, s := range p.sent {
		if s.After(last) {
			last = s
		}
	}
	var times []time.Time
	for seq, s := range p.sent {
		if s.After(last.Add(-time.Second)) {
			continue
		}
		sent++
		if _, ok := p.got[seq]; ok {
			answered++
			times = append(times, s)
		}
	}
	sort.Slice(times, func(i, j int) bool { return times[i].Before(times[j]) })
	for i := 1; i < len(times); i++ {
		gap = max(gap, times[i].Sub(times[i-1]))
	}
	return sent, answered, gap
}

// ttlProbe sends an echo with the given TTL and returns who answered: the
// destination (reply true) or the router where the TTL ran out. Routers
// rate-limit their ICMP errors (Linux: one a second per destination after
// a burst, IcmpOutRateLimitHost), so an unanswered probe is sent again
// (up to four times, each a new flow).
func ttlProbe(t *testing.T, l *lab.Lab, node string, dst netip.Addr, ttl int, wait time.Duration) (from netip.Addr, reply bool, err error) {
	t.Helper()
	for range 4 {
		if from, reply, err = ttlProbeOnce(t, l, node, dst, ttl, wait); err == nil {
			return from, reply, nil
		}
	}
	return from, reply, err
}

func ttlProbeOnce(t *testing.T, l *lab.Lab, node string, dst netip.Addr, ttl int, wait time.Duration) (from netip.Addr, reply bool, err error) {
	t.Helper()
	var conn *icmp.PacketConn
	err = lab.InNamespace(labtest.NS(t, l, node), func() error {
		var err error
		conn, err = icmp.ListenPacket("ip4:icmp", "0.0.0.0")
		return err
	})
	if err != nil {
		return from, false, err
	}
	defer conn.Close()
	if err := conn.IPv4PacketConn().SetTTL(ttl); err != nil {
		return from, false, err
	}
	var rb [2]byte
	if _, err := rand.Read(rb[:]); err != nil {
		return from, false, err
	}
	id := int(rb[0])<<8 | int(rb[1]) // a fresh flow for conntrack and NAT
	msg := icmp.Message{Type: ipv4.ICMPTypeEcho, Body: &icmp.Echo{ID: id, Seq: ttl, Data: []byte("trellis-ttl")}}
	b, _ := msg.Marshal(nil)
	if _, err := conn.WriteTo(b, &net.IPAddr{IP: dst.AsSlice()}); err != nil {
		return from, false, err
	}
	_ = conn.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 1500)
	for {
		n, peer, err := conn.ReadFrom(buf)
		if err != nil {
			return from, false, err
		}
		m, err := icmp.ParseMessage(1, buf[:n])
		if err != nil {
			continue
		}
		src, _ := netip.AddrFromSlice(peer.(*net.IPAddr).IP.To4())
		switch body := m.Body.(type) {
		case *icmp.Echo:
			if m.Type == ipv4.ICMPTypeEchoReply && body.ID == id && src == dst {
				return src, true, nil
			}
		case *icmp.TimeExceeded:
			// The quoted datagram: IPv4 header, then our echo header.
			d := body.Data
			if len(d) >= 28 {
				hl := int(d[0]&0x0f) * 4
				inner, _ := netip.AddrFromSlice(d[16:20])
				if len(d) >= hl+8 && inner == dst && int(d[hl+4])<<8|int(d[hl+5]) == id {
					return src, false, nil
				}
			}
		}
	}
}
