package dataplane

import (
	"encoding/binary"
	"net/netip"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// mmsghdr is struct mmsghdr of recvmmsg(2).
type mmsghdr struct {
	hdr unix.Msghdr
	n   uint32
}

// recvBatch receives up to len(bufs) datagrams with one recvmmsg(2). All
// kernel-facing structures are allocated once, so a receive allocates
// nothing (x/net's ReadBatch allocates the source address of every
// datagram).
type recvBatch struct {
	hs    []mmsghdr
	iovs  []unix.Iovec
	names []unix.RawSockaddrInet4
	oobs  [][]byte
	bufs  [][]byte

	rc     syscall.RawConn
	readFn func(fd uintptr) bool
	n      int
	err    error
}

func newRecvBatch(rc syscall.RawConn, bufs [][]byte, oobSize int) *recvBatch {
	r := &recvBatch{
		hs: make([]mmsghdr, len(bufs)), iovs: make([]unix.Iovec, len(bufs)),
		names: make([]unix.RawSockaddrInet4, len(bufs)), oobs: make([][]byte, len(bufs)),
		bufs: bufs, rc: rc,
	}
	for i := range bufs {
		r.oobs[i] = make([]byte, oobSize)
		r.iovs[i].Base = &bufs[i][0]
		r.iovs[i].SetLen(len(bufs[i]))
		h := &r.hs[i].hdr
		h.Name = (*byte)(unsafe.Pointer(&r.names[i]))
		h.Iov = &r.iovs[i]
		h.SetIovlen(1)
		h.Control = &r.oobs[i][0]
	}
	r.readFn = r.syscall
	return r
}

func (r *recvBatch) syscall(fd uintptr) bool {
	n, _, errno := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&r.hs[0])), uintptr(len(r.hs)), 0, 0, 0)
	if errno == unix.EAGAIN || errno == unix.EINTR {
		return false // wait until readable (or retry)
	}
	if errno != 0 {
		r.n, r.err = 0, errno
		return true
	}
	r.n, r.err = int(n), nil
	return true
}

// read blocks until at least one datagram is available and returns how
// many were received.
func (r *recvBatch) read() (int, error) {
	for i := range r.hs {
		h := &r.hs[i].hdr
		h.Namelen = unix.SizeofSockaddrInet4
		h.SetControllen(len(r.oobs[i]))
		h.Flags = 0
		r.hs[i].n = 0
	}
	if err := r.rc.Read(r.readFn); err != nil {
		return 0, err
	}
	return r.n, r.err
}

// size returns the length of datagram i.
func (r *recvBatch) size(i int) int { return int(r.hs[i].n) }

// oob returns the control messages of datagram i.
func (r *recvBatch) oob(i int) []byte { return r.oobs[i][:r.hs[i].hdr.Controllen] }

// from returns the source of datagram i.
func (r *recvBatch) from(i int) netip.AddrPort {
	sa := &r.names[i]
	if sa.Family != unix.AF_INET {
		return netip.AddrPort{}
	}
	port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:])
	return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), port)
}
