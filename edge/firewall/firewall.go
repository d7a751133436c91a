// Package firewall is the edge's packet filter, port forwarding, 1:1 NAT
// and Internet-breakout steering: it compiles the firewall, applications
// and breakout rules of a desired-state document into one nftables table,
// `inet trellis_fw`, replaced atomically (one netlink batch) on every
// apply, plus policy routing rules `fwmark … lookup 100+N` for the WANs
// breakout steers to and the public addresses of 1:1 NAT. See README.md.
package firewall

// Names of the table and its chains.
const (
	TableName = "trellis_fw"

	ChainSteer    = "steer"    // prerouting, mangle: breakout marks
	ChainDNAT     = "dnat"     // prerouting, dstnat: port forwards, 1:1 in
	ChainInput    = "input"    // input, filter: built-ins, inbound, WAN drop
	ChainForward  = "forward"  // forward, filter: policies, WAN drop
	ChainOutput   = "output"   // output, filter: empty, policy accept
	ChainSNAT     = "snat"     // postrouting, srcnat-1: 1:1 out
	ChainInbound  = "inbound"  // Firewall.Inbound
	ChainOutbound = "outbound" // Firewall.Outbound
	ChainLANToLAN = "lan_to_lan"
)

// SNATPriority runs 1:1 SNAT before the masquerade of table ip trellis
// (edge/hostnet, priority srcnat = 100): the first NAT chain to bind a
// connection wins.
const SNATPriority = 99

// Breakout marks. Bits 16-23 of the packet mark (and of the connection's
// ct mark) are the firewall's: N<<16 steers to WAN N (edge/hostnet's
// numbering: the document's WANs sorted by name, from 1), MarkBlock drops
// the packet if it would leave through a WAN. Other bits are kept.
const (
	MarkMask  uint32 = 0x00ff0000
	MarkShift        = 16
	MarkBlock uint32 = 0x00ff0000
)

// RulePriorityBase: WAN N's routing rule `fwmark N<<16/0xff0000 lookup
// 100+N` has priority RulePriorityBase+N (1201-1350), after edge/hostnet's
// rules 1000 (main table without default routes: LAN, tunnel and
// connected prefixes stay where they are) and 1001-1150 (from a WAN
// address), before the main table (32766).
const RulePriorityBase = 1200

// WANMark is the breakout mark of WAN number n.
func WANMark(n int) uint32 { return uint32(n) << MarkShift }
