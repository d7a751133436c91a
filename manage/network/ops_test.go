package network

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/trellis-sdwan/trellis/manage/auth"
	"github.com/trellis-sdwan/trellis/manage/store"
	"github.com/trellis-sdwan/trellis/manage/store/storetest"
)

// TestCreateTunnelsOnStore: allocation through a real store: idempotence,
// smallest free numbers, SPIs unique per receiving device, a full range.
func TestCreateTunnelsOnStore(t *testing.T) {
	ctx := context.Background()
	st := storetest.OpenSQLite(t)
	s, _ := auth.NewSealer(bytes.Repeat([]byte{5}, 32))
	acct := store.Account{Name: "a"}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(st.CreateAccount(ctx, &acct))
	g := store.Group{AccountID: acct.ID, Name: "g"}
	must(st.CreateGroup(ctx, &g))
	// A /29 holds four tunnels.
	org := store.Organization{AccountID: acct.ID, GroupID: g.ID, Name: "o", TunnelRange: "10.100.0.0/29", VxlanPort: 4789}
	must(st.CreateOrganization(ctx, &org))
	var ids []string
	for i := range 4 {
		d := store.Device{OrgID: org.ID, MachineID: fmt.Sprint("m", i), Name: fmt.Sprint("d", i), Approval: store.ApprovalApproved,
			ConnState: store.ConnDisconnected, SyncStatus: store.SyncPending, CredentialHash: auth.HashSecret(fmt.Sprint(i))}
		must(st.CreateDevice(ctx, &d))
		must(st.SetInterfaceConfig(ctx, org.ID, d.ID, []store.InterfaceAssignment{{Name: "eth0", Role: store.RoleWAN, DHCP: true}}))
		ids = append(ids, d.ID)
	}
	create := func(req TunnelRequest) (Created, error) {
		var res Created
		err := st.InTx(ctx, func(tx store.Store) error {
			o, err := LoadOrg(ctx, tx, org.ID)
			if err != nil {
				return err
			}
			res, err = CreateTunnels(ctx, tx, s, o, req, time.Now())
			return err
		})
		return res, err
	}
	res, err := create(TunnelRequest{Topology: TopologyHubSpoke, Devices: ids, Hubs: ids[:1]})
	must(err)
	if len(res.Created) != 3 || res.Created[2].Number != 3 {
		t.Fatalf("hub-spoke: %+v", res)
	}
	res, err = create(TunnelRequest{Topology: TopologyMesh, Devices: ids})
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "devices" || !strings.Contains(fe.Message, "no free /31") {
		t.Fatalf("a mesh of 4 (6 tunnels) in a /29 (4): %v %+v", err, res)
	}
	p, err := st.ListTunnels(ctx, org.ID, store.ListOptions{})
	must(err)
	if p.Total != 3 {
		t.Fatalf("the failed request left tunnels: %d", p.Total)
	}
	// Delete tunnel 2: the next one gets number 2.
	must(st.DeleteTunnel(ctx, org.ID, p.Items[1].ID))
	res, err = create(TunnelRequest{Topology: TopologyPair, Devices: []string{ids[2], ids[3]}})
	must(err)
	if len(res.Created) != 1 || res.Created[0].Number != 2 {
		t.Fatalf("number not reused: %+v", res)
	}
	res, err = create(TunnelRequest{Topology: TopologyPair, Devices: []string{ids[3], ids[2]}})
	must(err)
	if len(res.Created) != 0 || len(res.Existing) != 1 {
		t.Fatalf("not idempotent: %+v", res)
	}

	// Every device receives with distinct SPIs, also during rotations.
	o, err := LoadOrg(ctx, st, org.ID)
	must(err)
	var rot []string
	for _, t := range o.Tunnels {
		rot = append(rot, t.ID)
	}
	must(st.InTx(ctx, func(tx store.Store) error {
		_, err := StartRotations(ctx, tx, s, o, rot, time.Now())
		return err
	}))
	o, err = LoadOrg(ctx, st, org.ID)
	must(err)
	keys, errs := OpenTunnels(s, o.Tunnels)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	for _, id := range ids {
		n := 0
		for _, k := range keys {
			if k.RotationPhase != PhaseInbound || k.Keys.Next == nil {
				t.Fatalf("not rotating: %+v", k.Tunnel)
			}
			if k.DeviceA == id || k.DeviceB == id {
				n += 2 // current and next
			}
		}
		if got := len(InboundSPIs(id, keys)); got != n {
			t.Fatalf("device %s receives with %d distinct SPIs, want %d", id, got, n)
		}
	}
}

// BenchmarkCreateMesh measures creating the 1,225 tunnels of a 50-site mesh
// in one transaction (SQLite): numbers, SPIs, keys, sealing, inserts.
func BenchmarkCreateMesh(b *testing.B) {
	ctx := context.Background()
	s, _ := auth.NewSealer(bytes.Repeat([]byte{5}, 32))
	for b.Loop() {
		b.StopTimer()
		st := storetest.OpenSQLite(b)
		acct := store.Account{Name: "a"}
		_ = st.CreateAccount(ctx, &acct)
		g := store.Group{AccountID: acct.ID, Name: "g"}
		_ = st.CreateGroup(ctx, &g)
		org := store.Organization{AccountID: acct.ID, GroupID: g.ID, Name: "o", TunnelRange: "10.100.0.0/16", VxlanPort: 4789}
		_ = st.CreateOrganization(ctx, &org)
		var ids []string
		for i := range 50 {
			d := store.Device{OrgID: org.ID, MachineID: fmt.Sprint("m", i), Name: fmt.Sprint("d", i), Approval: store.ApprovalApproved,
				ConnState: store.ConnDisconnected, SyncStatus: store.SyncPending, CredentialHash: auth.HashSecret(fmt.Sprint(i))}
			if err := st.CreateDevice(ctx, &d); err != nil {
				b.Fatal(err)
			}
			_ = st.SetInterfaceConfig(ctx, org.ID, d.ID, []store.InterfaceAssignment{{Name: "eth0", Role: store.RoleWAN, DHCP: true}})
			ids = append(ids, d.ID)
		}
		b.StartTimer()
		err := st.InTx(ctx, func(tx store.Store) error {
			o, err := LoadOrg(ctx, tx, org.ID)
			if err != nil {
				return err
			}
			res, err := CreateTunnels(ctx, tx, s, o, TunnelRequest{Topology: TopologyMesh, Devices: ids}, time.Now())
			if err == nil && len(res.Created) != 1225 {
				b.Fatalf("created %d", len(res.Created))
			}
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}
