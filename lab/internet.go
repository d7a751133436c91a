package lab

import (
	"errors"
	"fmt"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netns"
)

// CutTable is the nftables table with which an ISP router stops
// forwarding to the lab's "Internet" (SetInternetCut). It lives in the ISP
// router's namespace, apart from the NAT table (NFTable), so that putting
// the Internet back is deleting it.
const CutTable = "trellis_lab_internet_cut"

// InternetCut says whether the ISP router of a WAN link ("s1/wan1") drops
// what its customer sends to the internet router (Plan.InternetAddr),
// and how many packets it dropped so.
type InternetCut struct {
	Link    string // "s1/wan1"
	ISP     string // the ISP router node, "s1/isp1"
	Cut     bool
	Dropped uint64
}

// SetInternetCut cuts (cut) or restores the Internet beyond a WAN link
// ("s1/wan1"): its ISP router drops every packet it would forward to the
// internet router's address (Plan.InternetAddr, the target of the lab's
// Internet checks). The WAN
// keeps its link and address, manage (Plan.ManageAddr) and the other
// sites stay reachable over it, so tunnels keep working: only "the
// Internet" beyond the ISP is gone. Cutting twice or restoring an uncut
// link is harmless.
func (p *Plan) SetInternetCut(link string, cut bool) error {
	r, ok := p.Relay(link)
	if !ok {
		return p.unknownLink(link)
	}
	isp, ok := p.Node(r.ISP.Node)
	if !ok {
		return fmt.Errorf("link %s: the plan has no ISP node %s", r.Name, r.ISP.Node)
	}
	return withNFT(isp.NS, func(c *nftables.Conn) error {
		t := &nftables.Table{Family: nftables.TableFamilyIPv4, Name: CutTable}
		if !cut {
			if _, err := cutCounter(c); errors.Is(err, errNoCut) {
				return nil
			}
			c.DelTable(t)
			return c.Flush()
		}
		// Replace any earlier cut: one rule, a fresh counter.
		c.AddTable(t)
		c.DelTable(t)
		c.AddTable(t)
		ch := c.AddChain(&nftables.Chain{Name: "forward", Table: t, Type: nftables.ChainTypeFilter,
			Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter})
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: []expr.Any{
			// ip daddr == InternetAddr counter drop
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: p.InternetAddr.AsSlice()},
			&expr.Counter{},
			&expr.Verdict{Kind: expr.VerdictDrop},
		}})
		if err := c.Flush(); err != nil {
			return fmt.Errorf("link %s: cutting the Internet at %s: %w", r.Name, isp.Name, err)
		}
		return nil
	})
}

// InternetCuts lists every WAN link whose Internet is cut
// (SetInternetCut), with the packets dropped so far. A namespace that
// cannot be read is an error.
func (p *Plan) InternetCuts() ([]InternetCut, error) {
	var out []InternetCut
	for _, r := range p.Relays {
		isp, ok := p.Node(r.ISP.Node)
		if !ok {
			continue
		}
		ic := InternetCut{Link: r.Name, ISP: isp.Name}
		err := withNFT(isp.NS, func(c *nftables.Conn) error {
			n, err := cutCounter(c)
			if errors.Is(err, errNoCut) {
				return nil
			}
			ic.Cut, ic.Dropped = true, n
			return err
		})
		if err != nil {
			return out, fmt.Errorf("link %s: %w", r.Name, err)
		}
		if ic.Cut {
			out = append(out, ic)
		}
	}
	return out, nil
}

var errNoCut = errors.New("no Internet cut")

// cutCounter reads the packets the cut table's rule dropped; errNoCut when
// the table does not exist.
func cutCounter(c *nftables.Conn) (uint64, error) {
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyIPv4)
	if err != nil {
		return 0, fmt.Errorf("listing nftables tables: %w", err)
	}
	for _, t := range tables {
		if t.Name != CutTable {
			continue
		}
		rules, err := c.GetRules(t, &nftables.Chain{Name: "forward", Table: t})
		if err != nil {
			return 0, fmt.Errorf("reading the cut rule: %w", err)
		}
		var n uint64
		for _, r := range rules {
			for _, e := range r.Exprs {
				if ctr, ok := e.(*expr.Counter); ok {
					n += ctr.Packets
				}
			}
		}
		return n, nil
	}
	return 0, errNoCut
}

// withNFT runs fn with an nftables connection to namespace ns.
func withNFT(ns string, fn func(*nftables.Conn) error) error {
	h, err := netns.GetFromName(ns)
	if err != nil {
		return fmt.Errorf("opening network namespace %s (is the lab up?): %w", ns, err)
	}
	defer h.Close()
	c, err := nftables.New(nftables.WithNetNSFd(int(h)))
	if err != nil {
		return fmt.Errorf("nftables connection in %s: %w", ns, err)
	}
	defer c.CloseLasting()
	return fn(c)
}

func (p *Plan) unknownLink(link string) error {
	var names []string
	for _, r := range p.Relays {
		names = append(names, r.Name)
	}
	return fmt.Errorf("unknown link %q: use one of %s", link, strings.Join(names, ", "))
}
