package dataplane

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync"
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
	gso    atomic.Bool              // UDP_SEGMENT usable on send
	gro    bool                     // UDP_GRO enabled on receive
	sched  atomic.Pointer[wanSched] // QoS scheduler when the WAN is shaped

	// sendMu makes the order in which frames reach the kernel the order
	// in which their ESP sequence numbers were drawn. The TUN reader
	// holds it from the first Seal of a batch until the batch is sent;
	// control senders (probes, probe replies) hold it from Seal to send.
	// Otherwise a frame sealed by another goroutine can leave after more
	// than a replay window (1024) of later-sealed frames of the same SA,
	// and the peer drops it: with ESN it infers the next 2^32 subspace
	// for such an old number (RFC 4303 A.2.2) and counts an auth failure.
	sendMu sync.Mutex
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
	w := &wanSock{key: k, conn: conn, pc: ipv4.NewPacketConn(conn)}
	if rc, err := conn.SyscallConn(); err == nil {
		_ = rc.Control(func(fd uintptr) {
			if _, err := unix.GetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_SEGMENT); err == nil {
				w.gso.Store(true)
			}
			w.gro = unix.SetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_GRO, 1) == nil
		})
	}
	return w, nil
}

func (w *wanSock) close() {
	if w.closed.CompareAndSwap(false, true) {
		if ws := w.sched.Swap(nil); ws != nil {
			ws.close()
		}
		w.conn.Close()
	}
}

// sendBatch is a batch of frames for one WAN socket, owned by one
// goroutine and reused. At flush, runs of equal-sized frames of one tunnel
// are coalesced into one UDP_SEGMENT send when the kernel supports it.
type sendBatch struct {
	frames  [][]byte
	tunnels []*tunnel
	n       int

	msgs    []ipv4.Message
	msgTun  []*tunnel
	msgCnt  []int
	gsoBufs [][]byte
	oob     [][]byte

	locked bool // holds the WAN's sendMu (see hold)
}

func newSendBatch(size int) *sendBatch {
	b := &sendBatch{
		frames: make([][]byte, size), tunnels: make([]*tunnel, size),
		msgs: make([]ipv4.Message, size), msgTun: make([]*tunnel, size), msgCnt: make([]int, size),
		gsoBufs: make([][]byte, size), oob: make([][]byte, size),
	}
	for i := range b.msgs {
		b.msgs[i].Buffers = make([][]byte, 1)
		b.oob[i] = make([]byte, cmsgSegmentSpace)
	}
	return b
}

// hold takes w.sendMu, if the batch does not hold it yet, before frames
// for w are sealed; flush releases it once they are sent.
func (b *sendBatch) hold(w *wanSock) {
	if !b.locked {
		w.sendMu.Lock()
		b.locked = true
	}
}

func (b *sendBatch) add(t *tunnel, frame []byte) {
	b.frames[b.n] = frame
	b.tunnels[b.n] = t
	b.n++
}

// flush sends the batch with sendmmsg and releases w.sendMu if the batch
// holds it. Datagrams the kernel refuses are counted as send errors on
// their tunnel.
func (b *sendBatch) flush(w *wanSock, log func(msg string, args ...any)) {
	k := 0
	gso := w.gso.Load()
	for i := 0; i < b.n; {
		t := b.tunnels[i]
		size := len(b.frames[i])
		j, total := i+1, size
		if gso {
			for j < b.n && j-i < maxGSOSegments && b.tunnels[j] == t && len(b.frames[j]) <= size && total+len(b.frames[j]) <= maxGSOBytes {
				total += len(b.frames[j])
				j++
				if len(b.frames[j-1]) < size {
					break // a shorter segment must be the last
				}
			}
		}
		m := &b.msgs[k]
		m.Addr = t.remote.Load().addr
		if j-i == 1 {
			m.Buffers[0] = b.frames[i]
			m.OOB = nil
		} else {
			if b.gsoBufs[k] == nil {
				b.gsoBufs[k] = make([]byte, maxGSOBytes)
			}
			buf := b.gsoBufs[k][:0]
			for x := i; x < j; x++ {
				buf = append(buf, b.frames[x]...)
			}
			m.Buffers[0] = buf
			m.OOB = putSegmentCmsg(b.oob[k], size)
		}
		b.msgTun[k], b.msgCnt[k] = t, j-i
		k++
		i = j
	}
	sent := 0
	for sent < k {
		n, err := w.pc.WriteBatch(b.msgs[sent:k], 0)
		if n > 0 {
			sent += n
		}
		if err == nil {
			continue
		}
		if errors.Is(err, net.ErrClosed) {
			break
		}
		if sent < k {
			if b.msgs[sent].OOB != nil && (errors.Is(err, unix.EIO) || errors.Is(err, unix.EINVAL)) && w.gso.CompareAndSwap(true, false) {
				log("UDP segmentation offload failed; sending datagrams one by one", "wan", w.key.String(), "err", err)
			}
			for x := 0; x < b.msgCnt[sent]; x++ {
				b.msgTun[sent].drop(DropSendError)
			}
			sent++
		}
	}
	for x := sent; x < k; x++ {
		for y := 0; y < b.msgCnt[x]; y++ {
			b.msgTun[x].drop(DropSendError)
		}
	}
	for i := 0; i < k; i++ {
		b.msgs[i].Buffers[0] = nil
		b.msgs[i].Addr = nil
		b.msgs[i].OOB = nil
		b.msgTun[i] = nil
	}
	for i := 0; i < b.n; i++ {
		b.frames[i] = nil
		b.tunnels[i] = nil
	}
	b.n = 0
	if b.locked {
		b.locked = false
		w.sendMu.Unlock()
	}
}
