package dataplane

import (
	"bytes"
	"net"
	"net/netip"
	"testing"
)

func TestRecvBatch(t *testing.T) {
	rx, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Skipf("no loopback UDP: %v", err)
	}
	defer rx.Close()
	tx, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	dst := rx.LocalAddr().(*net.UDPAddr).AddrPort()
	src := tx.LocalAddr().(*net.UDPAddr).AddrPort()
	rc, err := rx.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	bufs := make([][]byte, 8)
	for i := range bufs {
		bufs[i] = make([]byte, 2048)
	}
	rb := newRecvBatch(rc, bufs, 64)
	for i := 1; i <= 5; i++ {
		if _, err := tx.WriteToUDPAddrPort(bytes.Repeat([]byte{byte(i)}, 100*i), dst); err != nil {
			t.Fatal(err)
		}
	}
	got := 0
	for got < 5 {
		n, err := rb.read()
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < n; i++ {
			k := got + 1
			if rb.size(i) != 100*k || bufs[i][0] != byte(k) || rb.from(i) != src {
				t.Fatalf("datagram %d: size %d first byte %d from %v; want %d, %d, %v", k, rb.size(i), bufs[i][0], rb.from(i), 100*k, k, src)
			}
			got++
		}
	}
	// A receive allocates nothing.
	msg := []byte("x")
	allocs := testing.AllocsPerRun(100, func() {
		tx.WriteToUDPAddrPort(msg, dst)
		if n, err := rb.read(); err != nil || n != 1 {
			t.Fatalf("read %d, %v", n, err)
		}
	})
	if allocs != 0 && !raceEnabled {
		t.Fatalf("%v allocations per send+receive, want 0", allocs)
	}
	if rb.from(0) != src || (rb.from(0) == netip.AddrPort{}) {
		t.Fatal("source lost")
	}
}

func TestSendBatchGSOAndAllocs(t *testing.T) {
	rx, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Skipf("no loopback UDP: %v", err)
	}
	defer rx.Close()
	w, err := openWAN(wanKey{addr: netip.MustParseAddr("127.0.0.1")})
	if err != nil {
		t.Fatal(err)
	}
	defer w.close()
	dst := rx.LocalAddr().(*net.UDPAddr).AddrPort()
	tn := &tunnel{}
	tn.setRemote(dst.Addr().As4(), dst.Port())
	b := newSendBatch(batchSize)
	frames := [][]byte{bytes.Repeat([]byte{1}, 1000), bytes.Repeat([]byte{2}, 1000), bytes.Repeat([]byte{3}, 1000), bytes.Repeat([]byte{4}, 500)}
	send := func() {
		for _, f := range frames {
			b.add(tn, f)
		}
		b.flush(w, t.Logf)
	}
	send()
	t.Logf("UDP GSO in use: %v", w.gso.Load())
	// Whether or not the kernel coalesced them, four datagrams arrive
	// intact (GSO segments them, GRO is not enabled on rx).
	buf := make([]byte, 65536)
	for i, f := range frames {
		n, err := rx.Read(buf)
		if err != nil || !bytes.Equal(buf[:n], f) {
			t.Fatalf("datagram %d: %d bytes, err %v", i, n, err)
		}
	}
	if tn.drops[DropSendError].Load() != 0 {
		t.Fatalf("send errors: %d", tn.drops[DropSendError].Load())
	}
	if allocs := testing.AllocsPerRun(50, send); allocs != 0 && !raceEnabled {
		t.Fatalf("%v allocations per batch send, want 0", allocs)
	}
}
