package lab

import (
	"context"
	"encoding/binary"
	"fmt"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// NFTable is the name of the nftables table the lab creates inside ISP router
// namespaces (NAT) and edge namespaces (plumbing-mode breakout). It lives and
// dies with its namespace.
const NFTable = "trellis_lab"

func (b *builder) nat(context.Context) error {
	for _, n := range b.plan.NATs {
		if err := b.nft(n.Node, func(c *nftables.Conn, t *nftables.Table) error {
			return natRules(c, t, n)
		}); err != nil {
			return fmt.Errorf("%s: %s NAT: %w", n.Node, n.Type, err)
		}
	}
	for _, br := range b.plan.Breakouts {
		if err := b.nft(br.Node, func(c *nftables.Conn, t *nftables.Table) error {
			post := natChain(c, t, "postrouting", nftables.ChainHookPostrouting, nftables.ChainPriorityNATSource)
			for _, wan := range br.WANs {
				c.AddRule(&nftables.Rule{Table: t, Chain: post, Exprs: append(matchIfname(expr.MetaKeyOIFNAME, wan), &expr.Masq{})})
			}
			return nil
		}); err != nil {
			return fmt.Errorf("%s: breakout NAT: %w", br.Node, err)
		}
	}
	return nil
}

// nft opens an nftables connection in the node's namespace, creates the lab
// table, lets fill add chains and rules, and commits.
func (b *builder) nft(node string, fill func(*nftables.Conn, *nftables.Table) error) error {
	if _, err := b.handle(node); err != nil {
		return err
	}
	c, err := nftables.New(nftables.WithNetNSFd(int(b.nsh[node])))
	if err != nil {
		return fmt.Errorf("nftables connection: %w", err)
	}
	defer c.CloseLasting()
	t := c.AddTable(&nftables.Table{Family: nftables.TableFamilyIPv4, Name: NFTable})
	if err := fill(c, t); err != nil {
		return err
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("committing nftables rules: %w", err)
	}
	return nil
}

func natChain(c *nftables.Conn, t *nftables.Table, name string, hook *nftables.ChainHook, prio *nftables.ChainPriority) *nftables.Chain {
	return c.AddChain(&nftables.Chain{Name: name, Table: t, Type: nftables.ChainTypeNAT, Hooknum: hook, Priority: prio})
}

// natRules builds one ISP router's NAT:
//
//   - full-cone: SNAT of inside traffic to the public address without a port
//     range, which keeps the source port (endpoint-independent mapping), and
//     DNAT of everything arriving for the public address to the edge
//     (endpoint-independent filtering).
//   - port-restricted: masquerade; the mapping keeps the port for every
//     destination, and only conntrack replies come back in (address- and
//     port-dependent filtering).
//   - symmetric: masquerade with NF_NAT_RANGE_PROTO_RANDOM_FULLY: a new random
//     port for every new connection, i.e. per destination.
func natRules(c *nftables.Conn, t *nftables.Table, n NAT) error {
	post := natChain(c, t, "postrouting", nftables.ChainHookPostrouting, nftables.ChainPriorityNATSource)
	out := append(matchIfname(expr.MetaKeyIIFNAME, n.Inside), matchIfname(expr.MetaKeyOIFNAME, n.Outside)...)
	switch n.Type {
	case NATFullCone:
		pre := natChain(c, t, "prerouting", nftables.ChainHookPrerouting, nftables.ChainPriorityNATDest)
		c.AddRule(&nftables.Rule{Table: t, Chain: post, Exprs: append(out,
			&expr.Immediate{Register: 1, Data: n.Public.AsSlice()},
			&expr.NAT{Type: expr.NATTypeSourceNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegAddrMax: 1},
		)})
		in := append(matchIfname(expr.MetaKeyIIFNAME, n.Outside),
			// ip daddr == public
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: n.Public.AsSlice()},
			&expr.Immediate{Register: 1, Data: n.Private.AsSlice()},
			&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegAddrMax: 1},
		)
		c.AddRule(&nftables.Rule{Table: t, Chain: pre, Exprs: in})
	case NATPortRestricted:
		c.AddRule(&nftables.Rule{Table: t, Chain: post, Exprs: append(out, &expr.Masq{})})
	case NATSymmetric:
		c.AddRule(&nftables.Rule{Table: t, Chain: post, Exprs: append(out, &expr.Masq{FullyRandom: true})})
	default:
		return fmt.Errorf("no NAT rules for type %q", n.Type)
	}
	if n.ForwardPort != 0 {
		// udp dport ForwardPort of the public address → the edge, same port.
		pre := natChain(c, t, "prerouting", nftables.ChainHookPrerouting, nftables.ChainPriorityNATDest)
		port := binary.BigEndian.AppendUint16(nil, uint16(n.ForwardPort))
		c.AddRule(&nftables.Rule{Table: t, Chain: pre, Exprs: append(matchIfname(expr.MetaKeyIIFNAME, n.Outside),
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: n.Public.AsSlice()},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 9, Len: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_UDP}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: port},
			&expr.Immediate{Register: 1, Data: n.Private.AsSlice()},
			&expr.Immediate{Register: 2, Data: port},
			&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegAddrMax: 1, RegProtoMin: 2, RegProtoMax: 2},
		)})
	}
	return nil
}

func matchIfname(key expr.MetaKey, name string) []expr.Any {
	data := make([]byte, unix.IFNAMSIZ)
	copy(data, name)
	return []expr.Any{
		&expr.Meta{Key: key, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: data},
	}
}

// ListNFTables lists the nftables tables in a namespace (kernel name; ""
// for the calling process's namespace).
func ListNFTables(ns string) ([]string, error) {
	var tables []*nftables.Table
	list := func() error {
		c, err := nftables.New()
		if err != nil {
			return err
		}
		defer c.CloseLasting()
		tables, err = c.ListTables()
		return err
	}
	var err error
	if ns == "" {
		err = list()
	} else {
		err = InNamespace(ns, list)
	}
	if err != nil {
		return nil, fmt.Errorf("listing nftables tables: %w", err)
	}
	var names []string
	for _, t := range tables {
		names = append(names, t.Name)
	}
	return names, nil
}
