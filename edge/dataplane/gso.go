package dataplane

import (
	"encoding/binary"
	"unsafe"

	"golang.org/x/sys/unix"
)

// UDP segmentation offload (UDP_SEGMENT, Linux 4.18) and receive
// coalescing (UDP_GRO, Linux 5.0): several equal-sized datagrams to one
// destination travel through the stack as one buffer.

const (
	maxGSOSegments = 64
	maxGSOBytes    = 65000
)

var cmsgSegmentSpace = unix.CmsgSpace(2)

// putSegmentCmsg writes a UDP_SEGMENT control message for segments of
// size bytes into b and returns it.
func putSegmentCmsg(b []byte, size int) []byte {
	b = b[:cmsgSegmentSpace]
	clear(b)
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
	h.Level = unix.SOL_UDP
	h.Type = unix.UDP_SEGMENT
	h.SetLen(unix.CmsgLen(2))
	binary.NativeEndian.PutUint16(b[unix.CmsgLen(0):], uint16(size))
	return b
}

// groSize returns the segment size of a coalesced receive from its control
// messages, or 0 if the datagram was not coalesced.
func groSize(oob []byte) int {
	for len(oob) >= unix.SizeofCmsghdr {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		l := int(h.Len)
		if l < unix.SizeofCmsghdr || l > len(oob) {
			return 0
		}
		if h.Level == unix.SOL_UDP && h.Type == unix.UDP_GRO && l >= unix.CmsgLen(2) {
			data := oob[unix.CmsgLen(0):l]
			if len(data) >= 4 {
				return int(binary.NativeEndian.Uint32(data))
			}
			return int(binary.NativeEndian.Uint16(data))
		}
		next := unix.CmsgSpace(l - unix.CmsgLen(0))
		if next > len(oob) {
			return 0
		}
		oob = oob[next:]
	}
	return 0
}
