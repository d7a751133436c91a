package firewall

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// Rule is one compiled nftables rule: its expressions, the anonymous sets
// they look up (created in the same transaction), and an nft-like text
// for logs, tests and the README.
type Rule struct {
	Text  string
	Exprs []expr.Any
	sets  []anonSet
}

// anonSet is an anonymous constant set and the lookup that refers to it
// (its name and id are only known once the set is added to a batch).
type anonSet struct {
	set    *nftables.Set
	elems  []nftables.SetElement
	lookup *expr.Lookup
}

// rb builds one rule: matches first, then statements and a verdict.
type rb struct {
	parts []string
	ex    []expr.Any
	sets  []anonSet
}

func (b *rb) add(text string, ex ...expr.Any) *rb {
	if text != "" {
		b.parts = append(b.parts, text)
	}
	b.ex = append(b.ex, ex...)
	return b
}

func (b *rb) rule() Rule {
	return Rule{Text: strings.Join(b.parts, " "), Exprs: b.ex, sets: b.sets}
}

// clone copies the builder so that one prefix of matches can end in
// several rules.
func (b *rb) clone() *rb {
	return &rb{parts: slices.Clone(b.parts), ex: slices.Clone(b.ex), sets: slices.Clone(b.sets)}
}

func ifnameBytes(name string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, name)
	return b
}

// lookupSet adds `<reg1> [!=] { elems }` with an anonymous set.
func (b *rb) lookupSet(kt nftables.SetDatatype, interval bool, elems []nftables.SetElement, invert bool) {
	s := &nftables.Set{Anonymous: true, Constant: true, Interval: interval, KeyType: kt}
	l := &expr.Lookup{SourceRegister: 1, Invert: invert}
	b.sets = append(b.sets, anonSet{set: s, elems: elems, lookup: l})
	b.ex = append(b.ex, l)
}

// ifname matches the input (in) or output interface against names;
// negate inverts it.
func (b *rb) ifname(in bool, names []string, negate bool) *rb {
	key, word := expr.MetaKeyOIFNAME, "oifname"
	if in {
		key, word = expr.MetaKeyIIFNAME, "iifname"
	}
	op, neg := expr.CmpOpEq, ""
	if negate {
		op, neg = expr.CmpOpNeq, "!= "
	}
	b.ex = append(b.ex, &expr.Meta{Key: key, Register: 1})
	if len(names) == 1 {
		b.parts = append(b.parts, fmt.Sprintf("%s %s%q", word, neg, names[0]))
		b.ex = append(b.ex, &expr.Cmp{Op: op, Register: 1, Data: ifnameBytes(names[0])})
		return b
	}
	var q []string
	var elems []nftables.SetElement
	for _, n := range names {
		q = append(q, fmt.Sprintf("%q", n))
		elems = append(elems, nftables.SetElement{Key: ifnameBytes(n)})
	}
	b.parts = append(b.parts, fmt.Sprintf("%s %s{ %s }", word, neg, strings.Join(q, ", ")))
	b.lookupSet(nftables.TypeIFName, false, elems, negate)
	return b
}

func (b *rb) ipv4() *rb {
	return b.add("meta nfproto ipv4",
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.NFPROTO_IPV4}})
}

var protoNumbers = map[string]byte{"tcp": unix.IPPROTO_TCP, "udp": unix.IPPROTO_UDP, "icmp": unix.IPPROTO_ICMP}

func (b *rb) l4proto(p string) *rb {
	return b.add("meta l4proto "+p,
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{protoNumbers[p]}})
}

// tcpOrUDP matches TCP and UDP (ports without a protocol).
func (b *rb) tcpOrUDP() *rb {
	b.parts = append(b.parts, "meta l4proto { tcp, udp }")
	b.ex = append(b.ex, &expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1})
	b.lookupSet(nftables.TypeInetProto, false, []nftables.SetElement{{Key: []byte{unix.IPPROTO_TCP}}, {Key: []byte{unix.IPPROTO_UDP}}}, false)
	return b
}

// addr matches the IPv4 source (src) or destination against prefixes
// (the caller has matched meta nfproto ipv4).
func (b *rb) addr(src bool, ps []netip.Prefix) *rb {
	off, word := uint32(16), "ip daddr"
	if src {
		off, word = 12, "ip saddr"
	}
	b.ex = append(b.ex, &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: 4})
	ps = mergePrefixes(ps)
	if len(ps) == 1 {
		p := ps[0]
		b.parts = append(b.parts, word+" "+prefixText(p))
		if p.Bits() < 32 {
			mask := binary.BigEndian.AppendUint32(nil, ^uint32(0)<<(32-p.Bits()))
			if p.Bits() == 0 {
				mask = []byte{0, 0, 0, 0}
			}
			b.ex = append(b.ex, &expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: mask, Xor: []byte{0, 0, 0, 0}})
		}
		b.ex = append(b.ex, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: p.Addr().AsSlice()})
		return b
	}
	var txt []string
	var elems []nftables.SetElement
	for _, p := range ps {
		txt = append(txt, prefixText(p))
		first := p.Addr().As4()
		last := lastAddr(p)
		elems = append(elems, nftables.SetElement{Key: first[:]})
		if next := last.Next(); next.IsValid() {
			n := next.As4()
			elems = append(elems, nftables.SetElement{Key: n[:], IntervalEnd: true})
		}
	}
	b.parts = append(b.parts, word+" { "+strings.Join(txt, ", ")+" }")
	b.lookupSet(nftables.TypeIPAddr, true, elems, false)
	return b
}

func prefixText(p netip.Prefix) string {
	if p.Bits() == 32 {
		return p.Addr().String()
	}
	return p.String()
}

// dport matches the transport destination port (TCP or UDP; the caller
// has matched the protocol).
func (b *rb) dport(rs []portRange) *rb {
	b.ex = append(b.ex, &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2})
	rs = mergePorts(rs)
	if len(rs) == 1 {
		r := rs[0]
		b.parts = append(b.parts, "th dport "+r.String())
		if r.lo == r.hi {
			b.ex = append(b.ex, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(r.lo)})
		} else {
			b.ex = append(b.ex, &expr.Range{Op: expr.CmpOpEq, Register: 1, FromData: binaryutil.BigEndian.PutUint16(r.lo), ToData: binaryutil.BigEndian.PutUint16(r.hi)})
		}
		return b
	}
	var txt []string
	var elems []nftables.SetElement
	for _, r := range rs {
		txt = append(txt, r.String())
		elems = append(elems, nftables.SetElement{Key: binaryutil.BigEndian.PutUint16(r.lo)})
		if r.hi < 65535 {
			elems = append(elems, nftables.SetElement{Key: binaryutil.BigEndian.PutUint16(r.hi + 1), IntervalEnd: true})
		}
	}
	b.parts = append(b.parts, "th dport { "+strings.Join(txt, ", ")+" }")
	b.lookupSet(nftables.TypeInetService, true, elems, false)
	return b
}

// sport matches one source port (DHCP replies).
func (b *rb) sport(p uint16) *rb {
	return b.add(fmt.Sprintf("th sport %d", p),
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(p)})
}

// icmpType matches the ICMP type (after l4proto icmp).
func (b *rb) icmpType(name string, t byte) *rb {
	return b.add("icmp type "+name,
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{t}})
}

// ctState matches a connection tracking state bit set.
func (b *rb) ctState(text string, bits uint32) *rb {
	return b.add("ct state "+text,
		&expr.Ct{Key: expr.CtKeySTATE, Register: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: binaryutil.NativeEndian.PutUint32(bits), Xor: binaryutil.NativeEndian.PutUint32(0)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(0)})
}

// notNew matches packets of connections conntrack has seen before
// (established, related, invalid or untracked).
func (b *rb) notNew() *rb {
	return b.add("ct state != new",
		&expr.Ct{Key: expr.CtKeySTATE, Register: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: binaryutil.NativeEndian.PutUint32(expr.CtStateBitNEW), Xor: binaryutil.NativeEndian.PutUint32(0)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(0)})
}

// ipsDstNAT is IPS_DST_NAT of the conntrack status.
const ipsDstNAT = 1 << 5

// ctStatusDNAT matches connections whose destination was translated.
func (b *rb) ctStatusDNAT() *rb {
	return b.add("ct status dnat",
		&expr.Ct{Key: expr.CtKeySTATUS, Register: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: binaryutil.NativeEndian.PutUint32(ipsDstNAT), Xor: binaryutil.NativeEndian.PutUint32(0)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(0)})
}

// fibLocal matches packets addressed to the edge itself.
func (b *rb) fibLocal() *rb {
	return b.add("fib daddr type local",
		&expr.Fib{Register: 1, FlagDADDR: true, ResultADDRTYPE: true},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(unix.RTN_LOCAL)})
}

// markIs matches (meta mark or ct mark) & MarkMask == v.
func (b *rb) markIs(ct bool, v uint32) *rb {
	var load expr.Any = &expr.Meta{Key: expr.MetaKeyMARK, Register: 1}
	word := "meta mark"
	if ct {
		load, word = &expr.Ct{Key: expr.CtKeyMARK, Register: 1}, "ct mark"
	}
	return b.add(fmt.Sprintf("%s and %#x == %#x", word, MarkMask, v),
		load,
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: binaryutil.NativeEndian.PutUint32(MarkMask), Xor: binaryutil.NativeEndian.PutUint32(0)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(v)})
}

// setMark sets the MarkMask bits of the packet's mark (and of its
// connection's when ct) to v, keeping the other bits.
func (b *rb) setMark(ct bool, v uint32) *rb {
	if ct {
		b.add(fmt.Sprintf("ct mark set ct mark and %#x or %#x", ^MarkMask, v),
			&expr.Ct{Key: expr.CtKeyMARK, Register: 1},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: binaryutil.NativeEndian.PutUint32(^MarkMask), Xor: binaryutil.NativeEndian.PutUint32(v)},
			&expr.Ct{Key: expr.CtKeyMARK, Register: 1, SourceRegister: true})
	}
	return b.add(fmt.Sprintf("meta mark set meta mark and %#x or %#x", ^MarkMask, v),
		&expr.Meta{Key: expr.MetaKeyMARK, Register: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: binaryutil.NativeEndian.PutUint32(^MarkMask), Xor: binaryutil.NativeEndian.PutUint32(v)},
		&expr.Meta{Key: expr.MetaKeyMARK, Register: 1, SourceRegister: true})
}

// hashIs matches jhash(ip saddr . ip daddr) mod n == i (after nfproto ipv4).
func (b *rb) hashIs(n, i int) *rb {
	return b.add(fmt.Sprintf("jhash ip saddr . ip daddr mod %d seed %#x == %d", n, hashSeed, i),
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 8},
		&expr.Hash{SourceRegister: 1, DestRegister: 1, Length: 8, Modulus: uint32(n), Seed: hashSeed, Type: expr.HashTypeJenkins},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(uint32(i))})
}

// hashSeed is fixed so that a re-applied ruleset spreads flows the same way.
const hashSeed = 0x7e11

func (b *rb) counter() *rb { return b.add("counter", &expr.Counter{}) }

func (b *rb) verdict(k expr.VerdictKind) *rb {
	names := map[expr.VerdictKind]string{expr.VerdictAccept: "accept", expr.VerdictDrop: "drop", expr.VerdictReturn: "return"}
	return b.add(names[k], &expr.Verdict{Kind: k})
}

func (b *rb) jump(chain string) *rb {
	return b.add("jump "+chain, &expr.Verdict{Kind: expr.VerdictJump, Chain: chain})
}

// dnat translates the destination to addr (and port when not 0).
func (b *rb) dnat(addr netip.Addr, port uint16) *rb {
	ex := []expr.Any{&expr.Immediate{Register: 1, Data: addr.AsSlice()}}
	n := &expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1}
	text := "dnat ip to " + addr.String()
	if port != 0 {
		ex = append(ex, &expr.Immediate{Register: 2, Data: binaryutil.BigEndian.PutUint16(port)})
		n.RegProtoMin, n.Specified = 2, true
		text += fmt.Sprintf(":%d", port)
	}
	return b.add(text, append(ex, n)...)
}

// snat translates the source to addr.
func (b *rb) snat(addr netip.Addr) *rb {
	return b.add("snat ip to "+addr.String(),
		&expr.Immediate{Register: 1, Data: addr.AsSlice()},
		&expr.NAT{Type: expr.NATTypeSourceNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1})
}

// lastAddr is the last address of an IPv4 prefix.
func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().As4()
	v := binary.BigEndian.Uint32(a[:]) | (^uint32(0) >> p.Bits())
	if p.Bits() == 32 {
		v = binary.BigEndian.Uint32(a[:])
	}
	var out [4]byte
	binary.BigEndian.PutUint32(out[:], v)
	return netip.AddrFrom4(out)
}

// mergePrefixes masks, sorts and drops prefixes contained in another (the
// elements of an interval set must not overlap).
func mergePrefixes(ps []netip.Prefix) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range ps {
		out = append(out, p.Masked())
	}
	slices.SortFunc(out, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
	var merged []netip.Prefix
	for _, p := range out {
		if n := len(merged); n > 0 && merged[n-1].Contains(p.Addr()) {
			continue // sorted by address: p lies within the previous one
		}
		merged = append(merged, p)
	}
	return merged
}

// portRange is an inclusive port range.
type portRange struct{ lo, hi uint16 }

func (r portRange) String() string {
	if r.lo == r.hi {
		return fmt.Sprint(r.lo)
	}
	return fmt.Sprintf("%d-%d", r.lo, r.hi)
}

// mergePorts sorts ranges and joins overlapping or adjacent ones.
func mergePorts(rs []portRange) []portRange {
	rs = slices.Clone(rs)
	slices.SortFunc(rs, func(a, b portRange) int { return int(a.lo) - int(b.lo) })
	var out []portRange
	for _, r := range rs {
		if n := len(out); n > 0 && int(r.lo) <= int(out[n-1].hi)+1 {
			if r.hi > out[n-1].hi {
				out[n-1].hi = r.hi
			}
			continue
		}
		out = append(out, r)
	}
	return out
}
