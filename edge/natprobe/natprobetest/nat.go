package natprobetest

import (
	"fmt"
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/trellis-sdwan/trellis/wire/devproto"
)

// NATTable is the nftables table AddNAT creates (it goes with the
// namespace).
const NATTable = "h7b_nat"

// AddNAT makes the router in network namespace router a NAT of type nat
// (devproto.NATFullCone, NATRestricted or NATSymmetric), the way
// trellis-lab's ISP routers do: inside and outside are its interfaces,
// public its outside address, private the address of the host inside.
//
//   - full-cone: SNAT to public (keeps the source port) and DNAT of
//     everything arriving for public to private;
//   - restricted: masquerade (port kept, conntrack filtering by address
//     and port);
//   - symmetric: masquerade with random ports (a new port per
//     destination).
func AddNAT(router, nat, inside, outside string, public, private netip.Addr) error {
	h, err := netns.GetFromName(router)
	if err != nil {
		return fmt.Errorf("namespace %s: %w", router, err)
	}
	defer h.Close()
	c, err := nftables.New(nftables.WithNetNSFd(int(h)))
	if err != nil {
		return fmt.Errorf("nftables in %s: %w", router, err)
	}
	defer c.CloseLasting()
	tbl := c.AddTable(&nftables.Table{Family: nftables.TableFamilyIPv4, Name: NATTable})
	chain := func(name string, hook *nftables.ChainHook, prio *nftables.ChainPriority) *nftables.Chain {
		return c.AddChain(&nftables.Chain{Name: name, Table: tbl, Type: nftables.ChainTypeNAT, Hooknum: hook, Priority: prio})
	}
	post := chain("postrouting", nftables.ChainHookPostrouting, nftables.ChainPriorityNATSource)
	out := append(ifname(expr.MetaKeyIIFNAME, inside), ifname(expr.MetaKeyOIFNAME, outside)...)
	pub, priv := public.AsSlice(), private.AsSlice()
	switch nat {
	case devproto.NATFullCone:
		c.AddRule(&nftables.Rule{Table: tbl, Chain: post, Exprs: append(out,
			&expr.Immediate{Register: 1, Data: pub},
			&expr.NAT{Type: expr.NATTypeSourceNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegAddrMax: 1})})
		pre := chain("prerouting", nftables.ChainHookPrerouting, nftables.ChainPriorityNATDest)
		c.AddRule(&nftables.Rule{Table: tbl, Chain: pre, Exprs: append(ifname(expr.MetaKeyIIFNAME, outside),
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: pub},
			&expr.Immediate{Register: 1, Data: priv},
			&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegAddrMax: 1})})
	case devproto.NATRestricted:
		c.AddRule(&nftables.Rule{Table: tbl, Chain: post, Exprs: append(out, &expr.Masq{})})
	case devproto.NATSymmetric:
		c.AddRule(&nftables.Rule{Table: tbl, Chain: post, Exprs: append(out, &expr.Masq{FullyRandom: true})})
	default:
		return fmt.Errorf("no NAT rules for %q", nat)
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables in %s: %w", router, err)
	}
	return nil
}

func ifname(key expr.MetaKey, name string) []expr.Any {
	data := make([]byte, unix.IFNAMSIZ)
	copy(data, name)
	return []expr.Any{&expr.Meta{Key: key, Register: 1}, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: data}}
}
