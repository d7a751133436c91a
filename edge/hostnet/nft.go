package hostnet

import (
	"fmt"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// NFTable is the nftables table of the edge ("table ip trellis"). Its chain
// NATChain (type nat, hook postrouting, priority srcnat) masquerades
// traffic leaving each WAN with NAT: `oifname "<wan>" masquerade`.
const (
	NFTable  = "trellis"
	NATChain = "postrouting"
)

// natRule is the expression list of `oifname "<ifname>" masquerade`.
func natRule(ifname string) []expr.Any {
	name := make([]byte, unix.IFNAMSIZ)
	copy(name, ifname)
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: name},
		&expr.Masq{},
	}
}

// applyNAT makes table ip trellis hold exactly the masquerade rules of the
// given WANs, replacing its content in one transaction; with no WAN the
// table is deleted.
func applyNAT(wans []string) error {
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	defer c.CloseLasting()
	t := &nftables.Table{Family: nftables.TableFamilyIPv4, Name: NFTable}
	if len(wans) == 0 {
		existing, err := c.ListTableOfFamily(NFTable, nftables.TableFamilyIPv4)
		if err != nil || existing == nil {
			return nil // no table: nothing to remove
		}
		c.DelTable(t)
		if err := c.Flush(); err != nil {
			return fmt.Errorf("deleting nftables table ip %s: %w", NFTable, err)
		}
		return nil
	}
	// Add (no-op when it exists), delete and re-create: one atomic batch
	// whether or not the table existed.
	c.AddTable(t)
	c.DelTable(t)
	t = c.AddTable(t)
	ch := c.AddChain(&nftables.Chain{Name: NATChain, Table: t, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource})
	for _, w := range wans {
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: natRule(w)})
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("writing nftables table ip %s (masquerade on %v): %w", NFTable, wans, err)
	}
	return nil
}

// NATRules reads the WAN names masqueraded by table ip trellis (nil when
// the table does not exist): for tests and diagnostics.
func NATRules() ([]string, error) {
	c, err := nftables.New()
	if err != nil {
		return nil, err
	}
	defer c.CloseLasting()
	t, err := c.ListTableOfFamily(NFTable, nftables.TableFamilyIPv4)
	if err != nil || t == nil {
		return nil, nil
	}
	rules, err := c.GetRules(t, &nftables.Chain{Name: NATChain, Table: t})
	if err != nil {
		return nil, fmt.Errorf("reading table ip %s: %w", NFTable, err)
	}
	out := []string{}
	for _, r := range rules {
		if name, ok := parseNATRule(r.Exprs); ok {
			out = append(out, name)
		}
	}
	return out, nil
}

// parseNATRule recognizes `oifname "<x>" masquerade` and returns x.
func parseNATRule(ex []expr.Any) (string, bool) {
	if len(ex) != 3 {
		return "", false
	}
	m, ok1 := ex[0].(*expr.Meta)
	c, ok2 := ex[1].(*expr.Cmp)
	_, ok3 := ex[2].(*expr.Masq)
	if !ok1 || !ok2 || !ok3 || m.Key != expr.MetaKeyOIFNAME || c.Op != expr.CmpOpEq {
		return "", false
	}
	n := 0
	for n < len(c.Data) && c.Data[n] != 0 {
		n++
	}
	return string(c.Data[:n]), true
}
