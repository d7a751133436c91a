package dataplane

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync/atomic"
	"syscall"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
)

const socketBuffer = 8 << 20

// wanKey identifies a WAN socket: interface, source address, UDP port.
type wanKey struct {
	iface string
	addr  netip.Addr
	port  uint16
}

func (k wanKey) String() string {
	a := "0.0.0.0"
	if k.addr.IsValid() {
		a = k.addr.String()
	}
	s := net.JoinHostPort(a, strconv.Itoa(int(k.port)))
	if k.iface != "" {
		s += "%" + k.iface
	}
	return s
}

// wanSock is the UDP socket of one WAN: bound to the WAN's source address
// and, with SO_BINDTODEVICE, to its interface, so that each WAN carries
// its own tunnels. All tunnels of a WAN share it; received datagrams are
// demultiplexed by VNI.
type wanSock struct {
	key    wanKey
	conn   *net.UDPConn
	pc     *ipv4.PacketConn
	closed atomic.Bool
	done   chan struct{}
}

func openWAN(k wanKey) (*wanSock, error) {
	lc := net.ListenConfig{Control: func(network, address string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); serr != nil {
				return
			}
			if k.iface != "" {
				if serr = unix.BindToDevice(int(fd), k.iface); serr != nil {
					serr = fmt.Errorf("binding to interface %s: %w", k.iface, serr)
					return
				}
			}
			for _, o := range [][2]int{{unix.SO_RCVBUFFORCE, unix.SO_RCVBUF}, {unix.SO_SNDBUFFORCE, unix.SO_SNDBUF}} {
				if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, o[0], socketBuffer) != nil {
					_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, o[1], socketBuffer)
				}
			}
		})
		if err != nil {
			return err
		}
		return serr
	}}
	addr := "0.0.0.0"
	if k.addr.IsValid() {
		addr = k.addr.String()
	}
	pconn, err := lc.ListenPacket(context.Background(), "udp4", net.JoinHostPort(addr, strconv.Itoa(int(k.port))))
	if err != nil {
		return nil, fmt.Errorf("opening WAN socket %s (is the address configured on the interface?): %w", k, err)
	}
	conn := pconn.(*net.UDPConn)
	return &wanSock{key: k, conn: conn, pc: ipv4.NewPacketConn(conn), done: make(chan struct{})}, nil
}

func (w *wanSock) close() {
	if w.closed.CompareAndSwap(false, true) {
		w.conn.Close()
	}
}

// sendBatch is a batch of datagrams for one WAN socket, owned by one
// goroutine and reused.
type sendBatch struct {
	msgs    []ipv4.Message
	tunnels []*tunnel
	n       int
}

func newSendBatch(size int) *sendBatch {
	b := &sendBatch{msgs: make([]ipv4.Message, size), tunnels: make([]*tunnel, size)}
	for i := range b.msgs {
		b.msgs[i].Buffers = make([][]byte, 1)
	}
	return b
}

func (b *sendBatch) add(t *tunnel, frame []byte) {
	m := &b.msgs[b.n]
	m.Buffers[0] = frame
	m.Addr = t.remote.Load()
	b.tunnels[b.n] = t
	b.n++
}

// flush sends the batch with sendmmsg. Datagrams the kernel refuses are
// counted as send errors on their tunnel.
func (b *sendBatch) flush(w *wanSock) {
	sent := 0
	for sent < b.n {
		n, err := w.pc.WriteBatch(b.msgs[sent:b.n], 0)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				break
			}
			// Skip the datagram that failed and go on with the rest.
			if n < 0 {
				n = 0
			}
			sent += n
			if sent < b.n {
				b.tunnels[sent].drop(DropSendError)
				sent++
			}
			continue
		}
		sent += n
	}
	for i := sent; i < b.n; i++ {
		b.tunnels[i].drop(DropSendError)
	}
	for i := 0; i < b.n; i++ {
		b.msgs[i].Buffers[0] = nil
		b.msgs[i].Addr = nil
		b.tunnels[i] = nil
	}
	b.n = 0
}
