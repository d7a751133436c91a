// Package replay implements the ESP anti-replay window of RFC 4303 §3.4.3
// with 64-bit extended sequence numbers (ESN, RFC 4303 Appendix A).
//
// The window is a bitmap ring in the style of RFC 6479: it is kept as 64-bit
// blocks indexed by sequence number, so advancing the window clears whole
// blocks instead of shifting bits. The window accepts any sequence number
// within Size of the highest one authenticated so far that has not been seen.
//
// A Window is not safe for concurrent use; the data plane gives every inbound
// SA to exactly one receiving goroutine.
package replay

// Size is the number of sequence numbers the window tracks below the highest
// accepted one (inclusive of it).
const Size = 1024

const (
	blockBits = 64
	// One block more than Size/64: a window of Size consecutive numbers
	// spans at most Size/64+1 blocks when it is not block aligned.
	nBlocks = Size/blockBits + 1
)

// Window is an anti-replay window. The zero value is ready to use: it
// accepts sequence number 1 upward (0 is never valid, RFC 4303 §3.3.3).
type Window struct {
	top    uint64 // highest accepted sequence number; 0 means none yet
	blocks [nBlocks]uint64
}

// Top returns the highest sequence number accepted so far (0 if none).
func (w *Window) Top() uint64 { return w.top }

// Infer reconstructs the full 64-bit sequence number from the 32 low-order
// bits carried on the wire, following RFC 4303 Appendix A.2.2: the high-order
// bits are chosen so that the result lies in the window or above it.
func (w *Window) Infer(low uint32) uint64 {
	tl := uint32(w.top)
	th := uint32(w.top >> 32)
	const W = Size
	var hi uint32
	if tl >= W-1 {
		// Case A: the window lies within one 2^32 subspace.
		if low >= tl-W+1 {
			hi = th
		} else {
			hi = th + 1
		}
	} else {
		// Case B: the window spans two subspaces.
		if low >= tl-W+1 { // wraps modulo 2^32 on purpose
			if th == 0 {
				// There is no subspace below 0: the number is ahead.
				hi = 0
			} else {
				hi = th - 1
			}
		} else {
			hi = th
		}
	}
	return uint64(hi)<<32 | uint64(low)
}

// Check reports whether seq may be accepted: it is neither 0, nor older than
// the window, nor already seen. It does not change the window; call Accept
// once the packet has been authenticated.
func (w *Window) Check(seq uint64) bool {
	if seq == 0 {
		return false
	}
	if seq > w.top {
		return true
	}
	if w.top-seq >= Size {
		return false
	}
	b := (seq / blockBits) % nBlocks
	return w.blocks[b]&(1<<(seq%blockBits)) == 0
}

// Accept marks seq as received and advances the window if seq is the new
// highest number. It returns false (and changes nothing) if Check would have
// rejected seq. Only call it for authenticated packets.
func (w *Window) Accept(seq uint64) bool {
	if !w.Check(seq) {
		return false
	}
	if seq > w.top {
		oldBlock := w.top / blockBits
		newBlock := seq / blockBits
		if newBlock-oldBlock >= nBlocks {
			w.blocks = [nBlocks]uint64{}
		} else {
			for b := oldBlock + 1; b <= newBlock; b++ {
				w.blocks[b%nBlocks] = 0
			}
		}
		w.top = seq
	}
	w.blocks[(seq/blockBits)%nBlocks] |= 1 << (seq % blockBits)
	return true
}
