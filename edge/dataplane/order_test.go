package dataplane

import (
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/trellis-sdwan/trellis/edge/dataplane/frame"
	"github.com/trellis-sdwan/trellis/edge/dataplane/ippkt"
)

// TestControlFramesKeepSequenceOrder reproduces the rare GCM "auth" drops
// seen with probes on: a probe sealed on the outbound SA by the probe
// goroutine, then held (goroutine descheduled) while the TUN reader seals
// and sends more than a replay window of data frames on the same SA. The
// receiver then sees a sequence number older than its window; with ESN it
// infers the next 2^32 subspace and authentication fails. Frames must
// reach the socket in sealing order.
func TestControlFramesKeepSequenceOrder(t *testing.T) {
	rx, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Skipf("no loopback UDP: %v", err)
	}
	defer rx.Close()
	_ = rx.SetReadBuffer(socketBuffer)
	w, err := openWAN(wanKey{addr: netip.MustParseAddr("127.0.0.1")})
	if err != nil {
		t.Fatal(err)
	}
	defer w.close()

	// Sender (edge A): one tunnel on w, routes to site B.
	out := gcmSA(0x800, 8)
	tc := tunnelConfig("a", 5, out, gcmSA(0x900, 9))
	sas, err := rollSAs(nil, tc, time.Now(), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	tn := newTunnel(1, tc, w, sas, 1500, 1500)
	dst := rx.LocalAddr().(*net.UDPAddr).AddrPort()
	tn.setRemote(dst.Addr().As4(), dst.Port())
	snap := &snapshot{tunnels: map[string]*tunnel{"a": tn}, byVNI: map[uint32]*tunnel{5: tn}}
	snap.sites = map[string]*site{"B": {name: "B", tunnels: []*tunnel{tn}}}
	snap.sites["B"].refresh()
	snap.routes = newRouteTable([]RouteConfig{{Prefix: netip.MustParsePrefix("172.16.0.0/16"), Site: "B"}}, snap.sites)
	e := &Engine{log: slog.Default()}

	// Receiver (edge B): the mirrored tunnel with A's outbound SA inbound.
	rw := &wanSock{}
	rtc := tc
	rtc.Local, rtc.Peer = tc.Peer, tc.Local
	rtc.Outbound, rtc.Inbound = gcmSA(0x900, 9), out
	rsas, err := rollSAs(nil, rtc, time.Now(), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	rtn := newTunnel(2, rtc, rw, rsas, 1500, 1500)
	rsnap := &snapshot{byVNI: map[uint32]*tunnel{5: rtn}}

	const dataPackets = 4000
	var sent atomic.Int64
	progressed := make(chan struct{})
	var once sync.Once
	testHookSealed = func() {
		// Descheduled between Seal and send until the TUN reader got
		// well over a replay window ahead (or could not: fixed).
		select {
		case <-progressed:
		case <-time.After(300 * time.Millisecond):
		}
	}
	defer func() { testHookSealed = nil }()

	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // probe goroutine
		defer wg.Done()
		buf := make([]byte, frame.MaxHeadroom+28+16+frame.MaxTailroom)
		n := ippkt.BuildEcho(buf[frame.MaxHeadroom:], false, tn.ep.Local, tn.ep.Remote, 5, 1, make([]byte, 16))
		e.sendInner(tn, buf, n, tn.remote.Load().addr)
	}()
	go func() { // TUN reader
		defer wg.Done()
		bufs := make([][]byte, 64)
		sizes := make([]int, len(bufs))
		for i := range bufs {
			bufs[i] = make([]byte, bufSize)
			sizes[i] = 200
		}
		batches := map[*wanSock]*sendBatch{}
		pkt := innerPacket(200)
		for sent.Load() < dataPackets {
			for i := range bufs {
				copy(bufs[i][frame.MaxHeadroom:], pkt)
			}
			e.encapBatch(snap, bufs, sizes, batches, time.Now().UnixNano())
			if sent.Add(int64(len(bufs))) >= 2000 {
				once.Do(func() { close(progressed) })
			}
			time.Sleep(100 * time.Microsecond) // let the receiver keep up
		}
	}()

	var got [numDropReasons]int
	ok, probes := 0, 0
	buf := make([]byte, 65536)
	for ok+probes < dataPackets+1 {
		_ = rx.SetReadDeadline(time.Now().Add(time.Second))
		n, err := rx.Read(buf)
		if err != nil {
			break
		}
		_, inner, reason := decap(rsnap, rw, buf[:n])
		switch {
		case reason >= 0:
			got[reason]++
		case len(inner) == 44:
			probes++
		default:
			ok++
		}
	}
	wg.Wait()
	t.Logf("data %d, probes %d, drops %v (sent %d, tx %d)", ok, probes, got, sent.Load(), tn.txPackets.Load())
	if got[DropAuth] != 0 || got[DropReplay] != 0 {
		t.Fatalf("the receiver dropped %d frames as auth failures, %d as replays: a frame was sent out of sequence order", got[DropAuth], got[DropReplay])
	}
	if probes != 1 {
		t.Fatalf("probe not received")
	}
}
