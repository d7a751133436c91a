package replay

import (
	"math/rand/v2"
	"testing"
)

func TestWindowSequence(t *testing.T) {
	type step struct {
		seq  uint64
		want bool
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"zero is never valid", []step{{0, false}, {1, true}, {0, false}}},
		{"in order then duplicate", []step{{1, true}, {2, true}, {3, true}, {2, false}, {3, false}, {4, true}}},
		{"out of order within window", []step{{10, true}, {5, true}, {7, true}, {5, false}, {6, true}, {10, false}}},
		{"oldest edge of window", []step{{2000, true}, {2000 - Size + 1, true}, {2000 - Size, false}, {2000 - Size + 1, false}}},
		{"large jump clears window", []step{{5, true}, {5 + 10*Size, true}, {5 + 9*Size, false}, {5 + 10*Size - 1, true}, {5 + 10*Size - Size + 1, true}}},
		{"jump by exactly window size", []step{{100, true}, {100 + Size, true}, {100, false}, {101, true}, {101, false}}},
		{"block boundary reuse", []step{{63, true}, {64, true}, {64 + 64*nBlocks, true}, {64 + 64*nBlocks - 1, true}, {64 + 64*(nBlocks-1), true}}},
		{"high 64-bit values", []step{{1<<63 + 5, true}, {1<<63 + 4, true}, {1<<63 + 5, false}, {1 << 62, false}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var w Window
			for i, s := range tt.steps {
				if got := w.Accept(s.seq); got != s.want {
					t.Fatalf("step %d: Accept(%d) = %v, want %v (top %d)", i, s.seq, got, s.want, w.top)
				}
			}
		})
	}
}

func TestCheckDoesNotMark(t *testing.T) {
	var w Window
	if !w.Check(7) || !w.Check(7) {
		t.Fatal("Check must be side-effect free")
	}
	if !w.Accept(7) || w.Check(7) {
		t.Fatal("Accept must mark the number as seen")
	}
}

// TestWindowAgainstModel drives the window with random traffic (reordering,
// duplicates, jumps) and compares it with a plain map-based model.
func TestWindowAgainstModel(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var w Window
	seen := map[uint64]bool{}
	var top uint64
	next := uint64(1)
	for i := 0; i < 200000; i++ {
		var seq uint64
		switch r.IntN(10) {
		case 0: // replay of something recent or old
			seq = next - uint64(r.IntN(3*Size))
		case 1: // jump ahead
			next += uint64(r.IntN(4 * Size))
			seq = next
		default: // mostly in order with reordering
			seq = next + uint64(r.IntN(64))
			next++
		}
		if seq > 1<<62 { // underflow of next - x
			seq = 0
		}
		want := seq != 0 && !seen[seq] && (seq > top || top-seq < Size)
		if got := w.Accept(seq); got != want {
			t.Fatalf("iteration %d: Accept(%d) = %v, want %v (top %d)", i, seq, got, want, top)
		}
		if want {
			seen[seq] = true
			if seq > top {
				top = seq
			}
		}
	}
}

func TestInfer(t *testing.T) {
	const W = Size
	tests := []struct {
		name string
		top  uint64
		low  uint32
		want uint64
	}{
		{"fresh window", 0, 1, 1},
		{"fresh window far ahead", 0, 0xfffffff0, 0xfffffff0},
		{"case A in window", 5000, 4500, 4500},
		{"case A ahead", 5000, 6000, 6000},
		{"case A below window means next subspace", 5000, 100, 1<<32 | 100},
		{"case A at window bottom", 5000, 5000 - W + 1, 5000 - W + 1},
		{"case A just below window bottom", 5000, 5000 - W, 1<<32 | (5000 - W)},
		{"case A near wrap ahead", 0xffffff00, 0x10, 1<<32 | 0x10},
		{"case B previous subspace", 1<<32 | 10, 0xfffffff0, 0xfffffff0},
		{"case B current subspace", 1<<32 | 10, 5, 1<<32 | 5},
		{"case B ahead", 1<<32 | 10, 5000, 1<<32 | 5000},
		{"case B window bottom", 1<<32 | 10, 1<<32 - (W - 11), 1<<32 - (W - 11)},
		{"case B just below window bottom", 1<<32 | 10, 1<<32 - (W - 10), 1<<32 | (1<<32 - (W - 10))},
		{"high subspace", 7<<32 | 0x80000000, 0x7fffffff, 7<<32 | 0x7fffffff},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := Window{top: tt.top}
			if got := w.Infer(tt.low); got != tt.want {
				t.Fatalf("Infer(%#x) with top %#x = %#x, want %#x", tt.low, tt.top, got, tt.want)
			}
		})
	}
}

// TestInferAcrossWrap sends a continuous stream across the 2^32 boundary with
// reordering and checks that every packet is reconstructed and accepted once.
func TestInferAcrossWrap(t *testing.T) {
	var w Window
	start := uint64(1<<32 - 3000)
	w.Accept(start - 1)
	for s := start; s < start+6000; s += 2 {
		for _, seq := range []uint64{s + 1, s} { // swap each pair
			got := w.Infer(uint32(seq))
			if got != seq {
				t.Fatalf("Infer(%#x) = %#x, want %#x (top %#x)", uint32(seq), got, seq, w.top)
			}
			if !w.Accept(got) {
				t.Fatalf("Accept(%#x) rejected", got)
			}
		}
	}
	if w.Infer(uint32(start+5990)) != start+5990 || w.Accept(start+5990) {
		t.Fatal("replay after wrap must be rejected")
	}
}

func BenchmarkAcceptInOrder(b *testing.B) {
	var w Window
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		seq := w.Infer(uint32(i + 1))
		if !w.Accept(seq) {
			b.Fatal("rejected")
		}
	}
}
