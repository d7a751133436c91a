package relay

import (
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// vnetHdrLen is the size of struct virtio_net_hdr, which PACKET_VNET_HDR
// puts before every frame. Carrying it through keeps GSO super-frames and
// frames with a pending checksum intact from one veth to the other.
const vnetHdrLen = 10

// PacketPort is a Port on a network interface, using an AF_PACKET socket
// in the network namespace the caller is in.
type PacketPort struct {
	ifname string
	f      *os.File
	rc     syscall.RawConn
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// OpenPacket opens a raw packet socket bound to ifname, in promiscuous mode,
// that ignores frames this host sends.
func OpenPacket(ifname string) (*PacketPort, error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, fmt.Errorf("interface %s: %w", ifname, err)
	}
	// Protocol 0 receives nothing until bind names the interface, so no
	// frame from another interface slips in between socket and bind.
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("packet socket on %s: %w", ifname, err)
	}
	fail := func(what string, err error) (*PacketPort, error) {
		unix.Close(fd)
		return nil, fmt.Errorf("packet socket on %s: %s: %w", ifname, what, err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VNET_HDR, 1); err != nil {
		return fail("PACKET_VNET_HDR", err)
	}
	// Frames sent by this host's stack or by this relay on the interface.
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1); err != nil {
		return fail("PACKET_IGNORE_OUTGOING", err)
	}
	// Room for bursts: the kernel drops frames when this buffer is full.
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 8<<20)
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, 8<<20)
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index}); err != nil {
		return fail("bind", err)
	}
	mreq := unix.PacketMreq{Ifindex: int32(ifi.Index), Type: unix.PACKET_MR_PROMISC}
	if err := unix.SetsockoptPacketMreq(fd, unix.SOL_PACKET, unix.PACKET_ADD_MEMBERSHIP, &mreq); err != nil {
		return fail("promiscuous mode", err)
	}
	f := os.NewFile(uintptr(fd), "packet:"+ifname)
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("packet socket on %s: %w", ifname, err)
	}
	return &PacketPort{ifname: ifname, f: f, rc: rc}, nil
}

// ReadFrame implements Port.
func (p *PacketPort) ReadFrame(buf []byte) (n, wire int, err error) {
	var from unix.Sockaddr
	var rerr error
	err = p.rc.Read(func(fd uintptr) bool {
		n, from, rerr = unix.Recvfrom(int(fd), buf, 0)
		return !errors.Is(rerr, unix.EAGAIN)
	})
	if err == nil {
		err = rerr
	}
	if err != nil {
		if errors.Is(err, os.ErrClosed) {
			return 0, 0, errClosed
		}
		if errors.Is(err, unix.ENETDOWN) {
			// Reported once when the interface is set down; the socket
			// keeps working when it comes back up.
			return 0, 0, nil
		}
		return 0, 0, fmt.Errorf("receiving on %s: %w", p.ifname, err)
	}
	if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
		return n, 0, nil
	}
	if n <= vnetHdrLen {
		return n, 0, nil
	}
	return n, n - vnetHdrLen, nil
}

// WriteFrame implements Port.
func (p *PacketPort) WriteFrame(frame []byte) error {
	var werr error
	err := p.rc.Write(func(fd uintptr) bool {
		_, werr = unix.Write(int(fd), frame)
		return !errors.Is(werr, unix.EAGAIN)
	})
	if err == nil {
		err = werr
	}
	if err != nil {
		return fmt.Errorf("sending on %s: %w", p.ifname, err)
	}
	return nil
}

// Close implements Port.
func (p *PacketPort) Close() error { return p.f.Close() }
