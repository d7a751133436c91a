package devices

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"testing"
	"time"

	"github.com/trellis-sdwan/trellis/manage/auth"
	"github.com/trellis-sdwan/trellis/manage/network"
	"github.com/trellis-sdwan/trellis/manage/store"
	"github.com/trellis-sdwan/trellis/manage/store/storetest"
)

// benchOrg builds an organization of n approved sites (one WAN, one LAN
// each) with tunnels of a topology, on SQLite.
func benchOrg(b *testing.B, n int, topology string, hubs int) (*Service, string) {
	b.Helper()
	ctx := context.Background()
	st := storetest.OpenSQLite(b)
	sealer, _ := auth.NewSealer(bytes.Repeat([]byte{3}, 32))
	pub, _, _ := ed25519.GenerateKey(nil)
	s, err := New(Config{Store: st, TokenKey: pub, Sealer: sealer})
	if err != nil {
		b.Fatal(err)
	}
	acct := store.Account{Name: "a"}
	must := func(err error) {
		if err != nil {
			b.Fatal(err)
		}
	}
	must(st.CreateAccount(ctx, &acct))
	g := store.Group{AccountID: acct.ID, Name: "g"}
	must(st.CreateGroup(ctx, &g))
	org := store.Organization{AccountID: acct.ID, GroupID: g.ID, Name: "o", TunnelRange: "10.100.0.0/16", VxlanPort: 4789}
	must(st.CreateOrganization(ctx, &org))
	var ids []string
	for i := range n {
		wan := fmt.Sprintf("198.18.%d.%d", i/250, i%250+2)
		d := store.Device{OrgID: org.ID, MachineID: fmt.Sprint("m", i), Name: fmt.Sprint("site-", i), Approval: store.ApprovalApproved,
			ConnState: store.ConnDisconnected, SyncStatus: store.SyncPending, CredentialHash: auth.HashSecret(fmt.Sprint(i)),
			Interfaces: []store.Interface{{Name: "eth0", Addresses: []string{wan + "/16"}, LinkUp: true}, {Name: "eth1", LinkUp: true}}}
		must(st.CreateDevice(ctx, &d))
		must(st.SetInterfaceConfig(ctx, org.ID, d.ID, []store.InterfaceAssignment{
			{Name: "eth0", Role: store.RoleWAN, DHCP: true, NAT: true},
			{Name: "eth1", Role: store.RoleLAN, Address: fmt.Sprintf("10.%d.%d.1/24", 1+i/250, i%250)},
		}))
		ids = append(ids, d.ID)
	}
	req := network.TunnelRequest{Topology: topology, Devices: ids}
	if topology == network.TopologyHubSpoke {
		req.Hubs = ids[:hubs]
	}
	must(st.InTx(ctx, func(tx store.Store) error {
		o, err := network.LoadOrg(ctx, tx, org.ID)
		if err != nil {
			return err
		}
		_, err = network.CreateTunnels(ctx, tx, sealer, o, req, time.Now())
		return err
	}))
	return s, org.ID
}

// BenchmarkOrgRecompile measures an organization-wide recompilation (load
// the organization once, open every tunnel's keys, compile and encode
// every device's document, compare versions): what a tunnel, LAN or WAN
// change costs.
func BenchmarkOrgRecompile(b *testing.B) {
	for _, tc := range []struct {
		name     string
		n        int
		topology string
		hubs     int
	}{
		{"mesh-3", 3, network.TopologyMesh, 0},
		{"mesh-20", 20, network.TopologyMesh, 0},
		{"hub-spoke-100", 100, network.TopologyHubSpoke, 2},
	} {
		b.Run(tc.name, func(b *testing.B) {
			s, org := benchOrg(b, tc.n, tc.topology, tc.hubs)
			ctx := context.Background()
			if err := s.reconcileOrg(ctx, org); err != nil { // first: records the versions
				b.Fatal(err)
			}
			for b.Loop() {
				if err := s.reconcileOrg(ctx, org); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
