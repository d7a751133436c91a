package dhcpd

import (
	"bytes"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

var quiet = slog.New(slog.DiscardHandler)

// clock is a settable test clock.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newClock() *clock { return &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

func baseConfig() Config {
	return Config{
		Interface:  "lan0",
		Address:    netip.MustParsePrefix("192.168.10.1/24"),
		RangeStart: netip.MustParseAddr("192.168.10.100"),
		RangeEnd:   netip.MustParseAddr("192.168.10.109"),
		DNS:        []netip.Addr{netip.MustParseAddr("9.9.9.9"), netip.MustParseAddr("1.1.1.1")},
		Domain:     "site.example",
		LeaseTime:  time.Hour,
	}
}

func mac(n byte) net.HardwareAddr { return net.HardwareAddr{0x52, 0x54, 0, 0, 0, n} }

func newTestServer(t *testing.T, cfg Config, c *clock, dir string) (*Server, *atomic.Int64) {
	t.Helper()
	var changes atomic.Int64
	s, err := New(cfg, Options{Dir: dir, Now: c.now, OnChange: func() { changes.Add(1) }, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	return s, &changes
}

func discover(t *testing.T, s *Server, hw net.HardwareAddr, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	t.Helper()
	d, err := dhcpv4.NewDiscovery(hw, mods...)
	if err != nil {
		t.Fatal(err)
	}
	return s.Handle(d)
}

func request(t *testing.T, s *Server, hw net.HardwareAddr, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	t.Helper()
	r, err := dhcpv4.New(append([]dhcpv4.Modifier{dhcpv4.WithHwAddr(hw), dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest)}, mods...)...)
	if err != nil {
		t.Fatal(err)
	}
	return s.Handle(r)
}

// dora runs DISCOVER, OFFER, REQUEST, ACK and returns the address.
func dora(t *testing.T, s *Server, hw net.HardwareAddr, mods ...dhcpv4.Modifier) netip.Addr {
	t.Helper()
	offer := discover(t, s, hw, mods...)
	if offer == nil || offer.MessageType() != dhcpv4.MessageTypeOffer {
		t.Fatalf("%s: no offer: %v", hw, offer)
	}
	req, err := dhcpv4.NewRequestFromOffer(offer)
	if err != nil {
		t.Fatal(err)
	}
	ack := s.Handle(req)
	if ack == nil || ack.MessageType() != dhcpv4.MessageTypeAck {
		t.Fatalf("%s: no ack for %s: %v", hw, offer.YourIPAddr, ack)
	}
	if !ack.YourIPAddr.Equal(offer.YourIPAddr) {
		t.Fatalf("%s: acked %s, offered %s", hw, ack.YourIPAddr, offer.YourIPAddr)
	}
	a, _ := netip.AddrFromSlice(ack.YourIPAddr.To4())
	return a
}

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

func requested(a string) dhcpv4.Modifier {
	return dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.ParseIP(a)))
}

func TestAllocationOrder(t *testing.T) {
	c := newClock()
	s, _ := newTestServer(t, baseConfig(), c, "")
	steps := []struct {
		name string
		mac  byte
		mods []dhcpv4.Modifier
		want string
	}{
		{"first client gets the lowest address", 1, nil, "192.168.10.100"},
		{"second client gets the next one", 2, nil, "192.168.10.101"},
		{"a free requested address is honoured", 3, []dhcpv4.Modifier{requested("192.168.10.105")}, "192.168.10.105"},
		{"a taken requested address is not", 4, []dhcpv4.Modifier{requested("192.168.10.100")}, "192.168.10.102"},
		{"an address outside the range is not", 5, []dhcpv4.Modifier{requested("192.168.10.50")}, "192.168.10.103"},
		{"the interface's address is not", 6, []dhcpv4.Modifier{requested("192.168.10.1")}, "192.168.10.104"},
		{"a returning client gets its lease back", 1, []dhcpv4.Modifier{requested("192.168.10.108")}, "192.168.10.100"},
		{"the scan skips taken addresses", 7, nil, "192.168.10.106"},
	}
	for _, st := range steps {
		if got := dora(t, s, mac(st.mac), st.mods...); got != addr(st.want) {
			t.Errorf("%s: got %s, want %s", st.name, got, st.want)
		}
	}
	if n := len(s.Leases()); n != 7 {
		t.Errorf("%d leases, want 7: %+v", n, s.Leases())
	}
}

func TestOfferReservesAddress(t *testing.T) {
	c := newClock()
	s, changes := newTestServer(t, baseConfig(), c, "")
	o1 := discover(t, s, mac(1))
	o2 := discover(t, s, mac(2))
	if o1.YourIPAddr.Equal(o2.YourIPAddr) {
		t.Fatalf("two pending offers of %s", o1.YourIPAddr)
	}
	if len(s.Leases()) != 0 || changes.Load() != 0 {
		t.Errorf("offers show as leases: %+v (changes %d)", s.Leases(), changes.Load())
	}
	// A repeated DISCOVER gets the same offer.
	if o := discover(t, s, mac(1)); !o.YourIPAddr.Equal(o1.YourIPAddr) {
		t.Errorf("repeated discover offered %s, first %s", o.YourIPAddr, o1.YourIPAddr)
	}
	// An offer not taken up is free again after OfferHold.
	c.advance(OfferHold + time.Second)
	if o := discover(t, s, mac(3)); !o.YourIPAddr.Equal(o1.YourIPAddr) {
		t.Errorf("after the hold, offered %s, want %s again", o.YourIPAddr, o1.YourIPAddr)
	}
}

func TestStaticLeases(t *testing.T) {
	cfg := baseConfig()
	cfg.Static = []StaticLease{
		{MAC: mac(9), Address: addr("192.168.10.100"), Hostname: "printer"}, // inside the range
		{MAC: mac(8), Address: addr("192.168.10.20")},                       // outside it
	}
	cfg.Options = []Option{{Code: 12, Value: []byte("anyhost")}}
	c := newClock()
	s, _ := newTestServer(t, cfg, c, "")
	if got := dora(t, s, mac(1), requested("192.168.10.100")); got != addr("192.168.10.101") {
		t.Errorf("another client got %s; the static address 192.168.10.100 must be skipped", got)
	}
	if got := dora(t, s, mac(9), requested("192.168.10.105")); got != addr("192.168.10.100") {
		t.Errorf("static client got %s, want 192.168.10.100", got)
	}
	if got := dora(t, s, mac(8)); got != addr("192.168.10.20") {
		t.Errorf("static client outside the range got %s", got)
	}
	// The static client asking for another address is refused.
	if r := request(t, s, mac(9), requested("192.168.10.105")); r == nil || r.MessageType() != dhcpv4.MessageTypeNak {
		t.Errorf("static client requesting another address: %v, want NAK", r)
	}
	ls := s.Leases()
	i := slices.IndexFunc(ls, func(l Lease) bool { return l.MAC == mac(9).String() })
	if i < 0 || !ls[i].Static || ls[i].Hostname != "printer" {
		t.Errorf("static lease not listed as such: %+v", ls)
	}
	// The static host name is sent.
	o := discover(t, s, mac(9))
	if o.HostName() != "printer" {
		t.Errorf("host name option %q, want printer", o.HostName())
	}
	// Others get the extra option 12.
	if o := discover(t, s, mac(1)); o.HostName() != "anyhost" {
		t.Errorf("host name option %q for a dynamic client, want the extra option's", o.HostName())
	}
}

func TestRequestAnswers(t *testing.T) {
	c := newClock()
	cfg := baseConfig()
	s, _ := newTestServer(t, cfg, c, "")
	a1 := dora(t, s, mac(1))
	a2 := dora(t, s, mac(2))
	_ = discover(t, s, mac(3)) // offered, not yet requested
	self := net.IP(cfg.Address.Addr().AsSlice())
	sid := func(ip string) dhcpv4.Modifier {
		return dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.ParseIP(ip)))
	}
	cases := []struct {
		name string
		mac  byte
		mods []dhcpv4.Modifier
		want dhcpv4.MessageType // MessageTypeNone = no answer
	}{
		{"renew own lease (ciaddr)", 1, []dhcpv4.Modifier{dhcpv4.WithClientIP(a1.AsSlice())}, dhcpv4.MessageTypeAck},
		{"init-reboot with own lease", 2, []dhcpv4.Modifier{requested(a2.String())}, dhcpv4.MessageTypeAck},
		{"another client's address", 1, []dhcpv4.Modifier{requested(a2.String())}, dhcpv4.MessageTypeNak},
		{"renew another client's address", 2, []dhcpv4.Modifier{dhcpv4.WithClientIP(a1.AsSlice())}, dhcpv4.MessageTypeNak},
		{"address outside the subnet", 1, []dhcpv4.Modifier{requested("10.0.0.5")}, dhcpv4.MessageTypeNak},
		{"free address never offered", 4, []dhcpv4.Modifier{requested("192.168.10.107")}, dhcpv4.MessageTypeNak},
		{"no address at all", 1, nil, dhcpv4.MessageTypeNak},
		{"selecting another server", 3, []dhcpv4.Modifier{requested("192.168.10.102"), sid("192.168.10.254")}, dhcpv4.MessageTypeNone},
		{"selecting our offer after dropping it", 3, []dhcpv4.Modifier{requested("192.168.10.102"), dhcpv4.WithOption(dhcpv4.OptServerIdentifier(self))}, dhcpv4.MessageTypeNak},
	}
	for _, tc := range cases {
		r := request(t, s, mac(tc.mac), tc.mods...)
		got := dhcpv4.MessageTypeNone
		if r != nil {
			got = r.MessageType()
		}
		if got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
		if got == dhcpv4.MessageTypeNak && (r.ServerIdentifier() == nil || r.YourIPAddr != nil && !r.YourIPAddr.IsUnspecified()) {
			t.Errorf("%s: NAK without server id or with an address: %v", tc.name, r.Summary())
		}
	}
}

func TestReplyOptions(t *testing.T) {
	cfg := baseConfig()
	cfg.Gateway = addr("192.168.10.254")
	var err error
	o1, err := ParseOption(66, OptionText, "tftp.site.example")
	if err != nil {
		t.Fatal(err)
	}
	o2, err := ParseOption(42, OptionIPs, "192.168.10.1, 192.168.10.2")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Options = []Option{o1, o2}
	cfg.MaxLeaseTime = 2 * time.Hour
	s, _ := newTestServer(t, cfg, newClock(), "")
	for _, tc := range []struct {
		name      string
		mods      []dhcpv4.Modifier
		wantLease time.Duration
	}{
		{"default lease", nil, time.Hour},
		{"client asks for more than the maximum", []dhcpv4.Modifier{dhcpv4.WithLeaseTime(10 * 3600)}, 2 * time.Hour},
		{"client asks for less", []dhcpv4.Modifier{dhcpv4.WithLeaseTime(600)}, 10 * time.Minute},
		{"client asks for too little", []dhcpv4.Modifier{dhcpv4.WithLeaseTime(1)}, MinLeaseTime},
	} {
		o := discover(t, s, mac(1), tc.mods...)
		if o == nil {
			t.Fatalf("%s: no offer", tc.name)
		}
		if got := o.IPAddressLeaseTime(0); got != tc.wantLease {
			t.Errorf("%s: lease %s, want %s", tc.name, got, tc.wantLease)
		}
		if got := o.IPAddressRenewalTime(0); got != tc.wantLease/2 {
			t.Errorf("%s: T1 %s", tc.name, got)
		}
		if got := o.IPAddressRebindingTime(0); got != (tc.wantLease * 7 / 8).Truncate(time.Second) {
			t.Errorf("%s: T2 %s", tc.name, got)
		}
		if got := net.IP(o.SubnetMask()).String(); got != "255.255.255.0" {
			t.Errorf("%s: mask %s", tc.name, got)
		}
		if r := o.Router(); len(r) != 1 || !r[0].Equal(net.ParseIP("192.168.10.254")) {
			t.Errorf("%s: router %v", tc.name, r)
		}
		if d := o.DNS(); len(d) != 2 || !d[0].Equal(net.ParseIP("9.9.9.9")) || !d[1].Equal(net.ParseIP("1.1.1.1")) {
			t.Errorf("%s: DNS %v", tc.name, d)
		}
		if o.DomainName() != "site.example" {
			t.Errorf("%s: domain %q", tc.name, o.DomainName())
		}
		if sid := o.ServerIdentifier(); !sid.Equal(net.ParseIP("192.168.10.1")) {
			t.Errorf("%s: server id %v", tc.name, sid)
		}
		if v := o.GetOneOption(dhcpv4.GenericOptionCode(66)); string(v) != "tftp.site.example" {
			t.Errorf("%s: option 66 %q", tc.name, v)
		}
		if v := o.GetOneOption(dhcpv4.GenericOptionCode(42)); !bytes.Equal(v, []byte{192, 168, 10, 1, 192, 168, 10, 2}) {
			t.Errorf("%s: option 42 %v", tc.name, v)
		}
	}
}

func TestDefaultGatewayIsInterface(t *testing.T) {
	s, _ := newTestServer(t, baseConfig(), newClock(), "")
	o := discover(t, s, mac(1))
	if r := o.Router(); len(r) != 1 || !r[0].Equal(net.ParseIP("192.168.10.1")) {
		t.Errorf("router %v, want the interface's address", r)
	}
}

func TestExpiryAndPrune(t *testing.T) {
	cfg := baseConfig()
	cfg.RangeEnd = addr("192.168.10.101") // two addresses
	c := newClock()
	s, changes := newTestServer(t, cfg, c, t.TempDir())
	a1 := dora(t, s, mac(1))
	c.advance(30 * time.Minute)
	a2 := dora(t, s, mac(2))
	if o := discover(t, s, mac(3)); o != nil {
		t.Fatalf("pool of two exhausted, yet offered %s", o.YourIPAddr)
	}
	if got := changes.Load(); got != 2 {
		t.Errorf("%d change notifications for two new leases", got)
	}
	// Client 1's lease runs out; client 2's not yet.
	c.advance(31 * time.Minute)
	ls := s.Leases()
	if len(ls) != 1 || ls[0].Address != a2 {
		t.Errorf("after expiry of %s: leases %+v", a1, ls)
	}
	s.Prune()
	if got := changes.Load(); got != 3 {
		t.Errorf("pruning a lease notified %d times in all, want 3", got)
	}
	stored, err := ReadLeaseFile(s.file)
	if err != nil {
		t.Fatal(err)
	}
	if len(stored) != 1 || stored[0].Address != a2 {
		t.Errorf("lease file after pruning: %+v", stored)
	}
	if got := dora(t, s, mac(3)); got != a1 {
		t.Errorf("new client got %s, want the expired %s", got, a1)
	}
	// Renewing does not notify.
	before := changes.Load()
	if r := request(t, s, mac(2), dhcpv4.WithClientIP(a2.AsSlice())); r == nil || r.MessageType() != dhcpv4.MessageTypeAck {
		t.Fatalf("renewal: %v", r)
	}
	if changes.Load() != before {
		t.Errorf("a renewal notified a change")
	}
	c.advance(59 * time.Minute)
	if ls := s.Leases(); !slices.ContainsFunc(ls, func(l Lease) bool { return l.Address == a2 }) {
		t.Errorf("renewed lease gone: %+v", ls)
	}
}

func TestReleaseAndDecline(t *testing.T) {
	c := newClock()
	s, changes := newTestServer(t, baseConfig(), c, "")
	a1 := dora(t, s, mac(1))
	rel, _ := dhcpv4.New(dhcpv4.WithHwAddr(mac(1)), dhcpv4.WithMessageType(dhcpv4.MessageTypeRelease), dhcpv4.WithClientIP(a1.AsSlice()))
	// A release by someone else changes nothing.
	other, _ := dhcpv4.New(dhcpv4.WithHwAddr(mac(2)), dhcpv4.WithMessageType(dhcpv4.MessageTypeRelease), dhcpv4.WithClientIP(a1.AsSlice()))
	if r := s.Handle(other); r != nil || len(s.Leases()) != 1 {
		t.Fatalf("foreign release: answer %v, leases %+v", r, s.Leases())
	}
	if r := s.Handle(rel); r != nil || len(s.Leases()) != 0 {
		t.Fatalf("release: answer %v, leases %+v", r, s.Leases())
	}
	if changes.Load() != 2 {
		t.Errorf("%d change notifications, want 2 (lease, release)", changes.Load())
	}
	// Decline: the address is in use by someone else.
	a2 := dora(t, s, mac(2))
	dec, _ := dhcpv4.New(dhcpv4.WithHwAddr(mac(2)), dhcpv4.WithMessageType(dhcpv4.MessageTypeDecline), requested(a2.String()))
	if r := s.Handle(dec); r != nil || len(s.Leases()) != 0 {
		t.Fatalf("decline: answer %v, leases %+v", r, s.Leases())
	}
	if o := discover(t, s, mac(3)); o == nil || o.YourIPAddr.Equal(a2.AsSlice()) {
		t.Errorf("declined %s offered again at once: %v", a2, o)
	}
	c.advance(DeclineHold + time.Second)
	s.Prune()
	if o := discover(t, s, mac(4)); o == nil || !o.YourIPAddr.Equal(a2.AsSlice()) {
		t.Errorf("declined %s not offered after the hold: %v", a2, o)
	}
}

func TestInform(t *testing.T) {
	s, _ := newTestServer(t, baseConfig(), newClock(), "")
	inf, _ := dhcpv4.NewInform(mac(1), net.ParseIP("192.168.10.50"))
	r := s.Handle(inf)
	if r == nil || r.MessageType() != dhcpv4.MessageTypeAck {
		t.Fatalf("inform: %v", r)
	}
	if !r.YourIPAddr.IsUnspecified() || r.GetOneOption(dhcpv4.OptionIPAddressLeaseTime) != nil {
		t.Errorf("inform answer carries an address or a lease: %s", r.Summary())
	}
	if len(r.DNS()) != 2 {
		t.Errorf("inform answer without DNS: %s", r.Summary())
	}
	foreign, _ := dhcpv4.NewInform(mac(1), net.ParseIP("10.1.1.1"))
	if r := s.Handle(foreign); r != nil {
		t.Errorf("inform from another subnet answered: %s", r.Summary())
	}
}

func TestIgnoredPackets(t *testing.T) {
	s, _ := newTestServer(t, baseConfig(), newClock(), "")
	relayed, _ := dhcpv4.NewDiscovery(mac(1), dhcpv4.WithGatewayIP(net.ParseIP("10.9.9.9")))
	zero, _ := dhcpv4.NewDiscovery(net.HardwareAddr{0, 0, 0, 0, 0, 0})
	reply, _ := dhcpv4.NewDiscovery(mac(1))
	reply.OpCode = dhcpv4.OpcodeBootReply
	long, _ := dhcpv4.NewDiscovery(net.HardwareAddr{1, 2, 3, 4, 5, 6, 7, 8})
	for name, p := range map[string]*dhcpv4.DHCPv4{"relayed": relayed, "zero MAC": zero, "boot reply": reply, "8-byte hardware address": long, "nil": nil} {
		if r := s.Handle(p); r != nil {
			t.Errorf("%s answered: %s", name, r.Summary())
		}
	}
}

func TestPersistence(t *testing.T) {
	dir := t.TempDir()
	c := newClock()
	cfg := baseConfig()
	cfg.Static = []StaticLease{{MAC: mac(9), Address: addr("192.168.10.30")}}
	s1, _ := newTestServer(t, cfg, c, dir)
	got := map[byte]netip.Addr{}
	for _, m := range []byte{1, 2, 3, 9} {
		got[m] = dora(t, s1, mac(m), dhcpv4.WithOption(dhcpv4.OptHostName("host-"+string('a'+rune(m)))))
	}
	before := s1.Leases()
	// Restart: a new server on the same directory.
	c.advance(time.Minute)
	s2, _ := newTestServer(t, cfg, c, dir)
	after := s2.Leases()
	if !slices.Equal(before, after) {
		t.Fatalf("leases after restart:\n%+v\nbefore:\n%+v", after, before)
	}
	// Client 2 comes back (in a new order): same address.
	if a := dora(t, s2, mac(2)); a != got[2] {
		t.Errorf("client 2 got %s after restart, had %s", a, got[2])
	}
	if a := dora(t, s2, mac(4)); a == got[1] || a == got[2] || a == got[3] {
		t.Errorf("new client got %s, which is leased", a)
	}
	// A smaller range drops leases outside it; a static lease moved drops the old one.
	cfg.RangeEnd = got[1]
	cfg.Static[0].Address = addr("192.168.10.31")
	s3, _ := newTestServer(t, cfg, c, dir)
	if ls := s3.Leases(); len(ls) != 1 || ls[0].Address != got[1] {
		t.Errorf("after shrinking the range: %+v", ls)
	}
	// Expired leases are dropped at load.
	c.advance(2 * time.Hour)
	s4, _ := newTestServer(t, cfg, c, dir)
	if ls := s4.Leases(); len(ls) != 0 {
		t.Errorf("expired leases loaded: %+v", ls)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, ".*tmp*")); len(m) != 0 {
		t.Errorf("temporary files left: %v", m)
	}
}

func TestCorruptLeaseFile(t *testing.T) {
	dir := t.TempDir()
	file := LeaseFile(dir, "lan0")
	if err := os.WriteFile(file, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := newClock()
	s, _ := newTestServer(t, baseConfig(), c, dir)
	if len(s.Leases()) != 0 {
		t.Fatal("leases from a corrupt file")
	}
	aside, _ := filepath.Glob(file + ".bad-*")
	if len(aside) != 1 {
		t.Fatalf("corrupt file not moved aside: %v", aside)
	}
	if b, _ := os.ReadFile(aside[0]); string(b) != "{not json" {
		t.Errorf("moved file changed: %q", b)
	}
	dora(t, s, mac(1))
	if ls, err := ReadLeaseFile(file); err != nil || len(ls) != 1 {
		t.Errorf("new lease file: %v %v", ls, err)
	}
	// Garbage inside a valid file is dropped lease by lease.
	bad := `{"version":1,"interface":"lan0","leases":[
	 {"mac":"zz","address":"192.168.10.100","expires":"2027-01-01T00:00:00Z"},
	 {"mac":"52:54:00:00:00:05","address":"10.0.0.1","expires":"2027-01-01T00:00:00Z"},
	 {"mac":"52:54:00:00:00:06","address":"192.168.10.104","expires":"2027-01-01T00:00:00Z","hostname":"ok\u0000<b>"},
	 {"mac":"52:54:00:00:00:07","address":"192.168.10.104","expires":"2027-01-01T00:00:00Z"}]}`
	if err := os.WriteFile(file, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	s2, _ := newTestServer(t, baseConfig(), c, dir)
	ls := s2.Leases()
	if len(ls) != 1 || ls[0].MAC != "52:54:00:00:00:06" || ls[0].Hostname != "okb" {
		t.Errorf("leases kept from a partly bad file: %+v", ls)
	}
}

func TestParseOption(t *testing.T) {
	cases := []struct {
		code       int
		typ, value string
		want       []byte
		err        string
	}{
		{66, "text", "tftp", []byte("tftp"), ""},
		{150, "ips", "10.0.0.1,10.0.0.2", []byte{10, 0, 0, 1, 10, 0, 0, 2}, ""},
		{43, "hex", "01:02:0a", []byte{1, 2, 10}, ""},
		{43, "hex", "0x0102", []byte{1, 2}, ""},
		{0, "text", "x", nil, "1-254"},
		{255, "text", "x", nil, "1-254"},
		{3, "ips", "10.0.0.1", nil, "set by the server"},
		{51, "hex", "00", nil, "set by the server"},
		{52, "hex", "03", nil, "set by the server"},
		{12, "text", "host", []byte("host"), ""},
		{82, "hex", "0102", []byte{1, 2}, ""},
		{66, "text", "", nil, "empty"},
		{150, "ips", "10.0.0.1,fe80::1", nil, "not an IPv4"},
		{150, "ips", "", nil, "not an IPv4"},
		{43, "hex", "0g", nil, "not hex"},
		{43, "hex", "", nil, "not hex"},
		{66, "string", "x", nil, "want text, ips or hex"},
		{66, "text", strings.Repeat("x", 256), nil, "at most 255"},
	}
	for _, tc := range cases {
		o, err := ParseOption(tc.code, tc.typ, tc.value)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%d %s %q: error %v, want %q", tc.code, tc.typ, tc.value, err, tc.err)
			}
			continue
		}
		if err != nil || int(o.Code) != tc.code || !bytes.Equal(o.Value, tc.want) {
			t.Errorf("%d %s %q: %v %v", tc.code, tc.typ, tc.value, o, err)
		}
	}
}

func TestValidate(t *testing.T) {
	cases := []struct {
		name string
		mod  func(*Config)
		err  string // "" = valid
	}{
		{"base", func(*Config) {}, ""},
		{"default lease time", func(c *Config) { c.LeaseTime = 0 }, ""},
		{"gateway outside the range", func(c *Config) { c.Gateway = addr("192.168.10.254") }, ""},
		{"whole subnet of a /30", func(c *Config) {
			c.Address, c.RangeStart, c.RangeEnd = netip.MustParsePrefix("10.0.0.1/30"), addr("10.0.0.2"), addr("10.0.0.2")
		}, ""},
		{"no interface", func(c *Config) { c.Interface = "" }, "interface name"},
		{"interface with a slash", func(c *Config) { c.Interface = "../x" }, "interface name"},
		{"no address", func(c *Config) { c.Address = netip.Prefix{} }, "interface address"},
		{"IPv6 address", func(c *Config) { c.Address = netip.MustParsePrefix("fd00::1/64") }, "interface address"},
		{"a /31", func(c *Config) { c.Address = netip.MustParsePrefix("192.168.10.1/31") }, "no room"},
		{"interface on the network address", func(c *Config) { c.Address = netip.MustParsePrefix("192.168.10.0/24") }, "network or broadcast"},
		{"range start outside the subnet", func(c *Config) { c.RangeStart = addr("192.168.11.5") }, "outside the interface's subnet"},
		{"range end outside the subnet", func(c *Config) { c.RangeEnd = addr("10.0.0.1") }, "outside the interface's subnet"},
		{"start after end", func(c *Config) { c.RangeStart, c.RangeEnd = c.RangeEnd, c.RangeStart }, "after range end"},
		{"range from the network address", func(c *Config) { c.RangeStart = addr("192.168.10.0") }, "network address"},
		{"range to the broadcast address", func(c *Config) { c.RangeEnd = addr("192.168.10.255") }, "broadcast address"},
		{"range over the interface", func(c *Config) { c.RangeStart = addr("192.168.10.1") }, "own address"},
		{"range over the gateway", func(c *Config) { c.Gateway = addr("192.168.10.105") }, "contains the gateway"},
		{"gateway outside the subnet", func(c *Config) { c.Gateway = addr("10.0.0.1") }, "gateway 10.0.0.1 is outside"},
		{"range too big", func(c *Config) {
			c.Address, c.RangeStart, c.RangeEnd = netip.MustParsePrefix("10.0.0.1/8"), addr("10.0.0.2"), addr("10.9.0.0")
		}, "at most 65536"},
		{"no range", func(c *Config) { c.RangeStart = netip.Addr{} }, "range start invalid IP: want an IPv4"},
		{"IPv6 DNS", func(c *Config) { c.DNS = []netip.Addr{addr("2001:db8::1")} }, "DNS server"},
		{"invalid DNS", func(c *Config) { c.DNS = []netip.Addr{{}} }, "DNS server"},
		{"lease too short", func(c *Config) { c.LeaseTime = time.Second }, "lease time"},
		{"lease too long", func(c *Config) { c.LeaseTime = 2 * MaxLeaseTime }, "lease time"},
		{"max below lease", func(c *Config) { c.MaxLeaseTime = time.Minute }, "maximum lease time"},
		{"domain with a space", func(c *Config) { c.Domain = "a b" }, "domain"},
		{"static outside the subnet", func(c *Config) { c.Static = []StaticLease{{MAC: mac(1), Address: addr("10.0.0.1")}} }, "outside the interface's subnet"},
		{"static on the interface", func(c *Config) { c.Static = []StaticLease{{MAC: mac(1), Address: addr("192.168.10.1")}} }, "interface's or gateway's"},
		{"static on broadcast", func(c *Config) { c.Static = []StaticLease{{MAC: mac(1), Address: addr("192.168.10.255")}} }, "broadcast"},
		{"static bad MAC", func(c *Config) { c.Static = []StaticLease{{MAC: net.HardwareAddr{1}, Address: addr("192.168.10.5")}} }, "not an Ethernet address"},
		{"two statics for a MAC", func(c *Config) {
			c.Static = []StaticLease{{MAC: mac(1), Address: addr("192.168.10.5")}, {MAC: mac(1), Address: addr("192.168.10.6")}}
		}, "two static leases for MAC"},
		{"two statics for an address", func(c *Config) {
			c.Static = []StaticLease{{MAC: mac(1), Address: addr("192.168.10.5")}, {MAC: mac(2), Address: addr("192.168.10.5")}}
		}, "two static leases for address"},
		{"static bad host name", func(c *Config) {
			c.Static = []StaticLease{{MAC: mac(1), Address: addr("192.168.10.5"), Hostname: "a b"}}
		}, "host name"},
		{"own option", func(c *Config) { c.Options = []Option{{Code: 6, Value: []byte{1, 2, 3, 4}}} }, "set by the server"},
		{"option twice", func(c *Config) { c.Options = []Option{{Code: 66, Value: []byte("a")}, {Code: 66, Value: []byte("b")}} }, "given twice"},
	}
	for _, tc := range cases {
		c := baseConfig()
		tc.mod(&c)
		err := c.Validate()
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.err)
		}
		if tc.err != "" {
			if _, nerr := New(c, Options{}); nerr == nil {
				t.Errorf("%s: New accepted the configuration", tc.name)
			}
		}
	}
}

func TestConfigEqual(t *testing.T) {
	a, b := baseConfig(), baseConfig()
	if !a.Equal(b) {
		t.Fatal("equal configurations differ")
	}
	b.Static = []StaticLease{{MAC: mac(1), Address: addr("192.168.10.5")}}
	if a.Equal(b) {
		t.Error("static lease change not seen")
	}
	b = baseConfig()
	b.LeaseTime, b.MaxLeaseTime, b.Gateway = time.Hour, time.Hour, b.Address.Addr() // the defaults
	if !a.Equal(b) {
		t.Error("defaults spelled out differ")
	}
	b.DNS = b.DNS[:1]
	if a.Equal(b) {
		t.Error("DNS change not seen")
	}
}

func TestClosedServerChangesNothing(t *testing.T) {
	c := newClock()
	s, _ := newTestServer(t, baseConfig(), c, t.TempDir())
	a := dora(t, s, mac(1))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if o := discover(t, s, mac(2)); o != nil {
		t.Errorf("a closed server answered: %s", o.Summary())
	}
	rel, _ := dhcpv4.New(dhcpv4.WithHwAddr(mac(1)), dhcpv4.WithMessageType(dhcpv4.MessageTypeRelease), dhcpv4.WithClientIP(a.AsSlice()))
	s.Handle(rel)
	c.advance(2 * time.Hour)
	s.Prune()
	if ls, err := ReadLeaseFile(s.file); err != nil || len(ls) != 1 || ls[0].Address != a {
		t.Errorf("lease file changed after Close: %+v %v", ls, err)
	}
}
