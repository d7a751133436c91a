package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/trellis-sdwan/trellis/manage/store"
)

func tunnelID(x store.Tunnel) string     { return x.ID }
func routeID(x store.StaticRoute) string { return x.ID }
func tunnelNumber(x store.Tunnel) int    { return x.Number }
func mapItems[T, U any](xs []T, f func(T) U) []U {
	out := make([]U, len(xs))
	for i, x := range xs {
		out[i] = f(x)
	}
	return out
}

// newDevice creates a device with a chosen id (tunnels need DeviceA < DeviceB).
func newDevice(t *testing.T, s store.Store, orgID, id string) store.Device {
	t.Helper()
	d := store.Device{ID: id, OrgID: orgID, MachineID: "m-" + id, Name: id}
	must(t, s.CreateDevice(t.Context(), &d))
	return d
}

// wantField fails unless err is a FieldError (ErrInvalid) on field.
func wantField(t *testing.T, err error, field, what string) {
	t.Helper()
	var fe *store.FieldError
	if !errors.Is(err, store.ErrInvalid) || !errors.As(err, &fe) || fe.Field != field {
		t.Fatalf("%s: got %v, want ErrInvalid on %s", what, err, field)
	}
}

// wantConflict fails unless err is a ConflictError on field.
func wantConflict(t *testing.T, err error, field, what string) {
	t.Helper()
	var ce *store.ConflictError
	if !errors.Is(err, store.ErrConflict) || !errors.As(err, &ce) || ce.Field != field {
		t.Fatalf("%s: got %v, want ErrConflict on %s", what, err, field)
	}
}

func testInterfaceConfig(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := newTenant(t, s, "a")
	b := newTenant(t, s, "b")
	wan := store.InterfaceAssignment{Name: "eth0", Role: store.RoleWAN, Address: "192.0.2.2/24", Gateway: "192.0.2.1",
		Metric: 10, MTU: 1500, Labels: []string{"l1", "l2"}, PublicAddress: "198.51.100.7", PublicPort: 4790, NAT: true}
	lan := store.InterfaceAssignment{Name: "eth1", Role: store.RoleLAN, Address: "10.1.0.1/24",
		DHCPServer: &store.DHCPServerConfig{RangeStart: "10.1.0.100", RangeEnd: "10.1.0.199", DNS: []string{"10.1.0.1", "9.9.9.9"},
			Domain: "lan", LeaseSeconds: 3600, MaxSeconds: 7200,
			StaticLeases: []store.DHCPStaticLease{{MAC: "aa:bb:cc:dd:ee:01", Address: "10.1.0.10", Hostname: "printer"}},
			Options:      []store.DHCPOption{{Code: 42, Type: "ips", Value: "10.1.0.1"}}}}

	// CreateDevice stores the config; Get returns it unchanged.
	d := store.Device{OrgID: a.org.ID, MachineID: "m1", Name: "edge", InterfaceConfig: []store.InterfaceAssignment{wan}}
	must(t, s.CreateDevice(ctx, &d))
	got, err := s.GetDevice(ctx, a.org.ID, d.ID)
	must(t, err)
	same(t, got.InterfaceConfig, []store.InterfaceAssignment{wan}, "config after create")

	// A device created without config has an empty, non-nil one.
	plain := store.Device{OrgID: a.org.ID, MachineID: "m2"}
	must(t, s.CreateDevice(ctx, &plain))
	got, err = s.GetDevice(ctx, a.org.ID, plain.ID)
	must(t, err)
	if got.InterfaceConfig == nil || len(got.InterfaceConfig) != 0 {
		t.Fatalf("config of a plain device: %#v, want empty non-nil", got.InterfaceConfig)
	}

	// SetInterfaceConfig replaces it and bumps updated_at.
	before, err := s.GetDevice(ctx, a.org.ID, d.ID)
	must(t, err)
	cfg := []store.InterfaceAssignment{wan, lan, {Name: "eth2", Role: store.RoleUnassigned}}
	must(t, s.SetInterfaceConfig(ctx, a.org.ID, d.ID, cfg))
	got, err = s.GetDevice(ctx, a.org.ID, d.ID)
	must(t, err)
	same(t, got.InterfaceConfig, cfg, "config after set")
	if got.UpdatedAt.Before(before.UpdatedAt) || !got.CreatedAt.Equal(before.CreatedAt) {
		t.Fatalf("timestamps after set: created %v→%v, updated %v→%v", before.CreatedAt, got.CreatedAt, before.UpdatedAt, got.UpdatedAt)
	}

	// Another organization can neither set nor see it.
	wantErr(t, s.SetInterfaceConfig(ctx, b.org.ID, d.ID, nil), store.ErrNotFound, "set config from other org")
	wantErr(t, s.SetInterfaceConfig(ctx, a.org.ID, "missing", cfg), store.ErrNotFound, "set config of missing device")
	got, err = s.GetDevice(ctx, a.org.ID, d.ID)
	must(t, err)
	same(t, got.InterfaceConfig, cfg, "config after other org's attempt")

	// UpdateDevice with a stale (empty) config leaves the stored one and
	// hands it back.
	stale := got
	stale.InterfaceConfig = nil
	stale.Name = "renamed"
	must(t, s.UpdateDevice(ctx, &stale))
	same(t, stale.InterfaceConfig, cfg, "config returned by UpdateDevice")
	got, err = s.GetDevice(ctx, a.org.ID, d.ID)
	must(t, err)
	if got.Name != "renamed" {
		t.Fatalf("name after update: %q", got.Name)
	}
	same(t, got.InterfaceConfig, cfg, "config after UpdateDevice")

	// The device channel's writes leave it alone too.
	must(t, s.SetDeviceReport(ctx, a.org.ID, d.ID, store.DeviceReport{Hostname: "h"}))
	got, err = s.GetDevice(ctx, a.org.ID, d.ID)
	must(t, err)
	same(t, got.InterfaceConfig, cfg, "config after SetDeviceReport")

	// SetDeviceInterfaces replaces only the reported interfaces.
	before = got
	reported := []store.Interface{
		{Name: "eth0", MAC: "02:00:00:00:00:01", Addresses: []string{"192.0.2.2/24"}, Gateway: "192.0.2.1", LinkUp: true, MTU: 1500, DHCP: true},
		{Name: "eth1", MAC: "02:00:00:00:00:02", Addresses: []string{}, LinkUp: false},
	}
	must(t, s.SetDeviceInterfaces(ctx, a.org.ID, d.ID, reported))
	got, err = s.GetDevice(ctx, a.org.ID, d.ID)
	must(t, err)
	same(t, got.Interfaces, reported, "reported interfaces")
	want := before
	want.Interfaces = reported
	same(t, got, want, "device after SetDeviceInterfaces (nothing else changes, updated_at included)")
	wantErr(t, s.SetDeviceInterfaces(ctx, b.org.ID, d.ID, nil), store.ErrNotFound, "set interfaces from other org")
	must(t, s.SetDeviceInterfaces(ctx, a.org.ID, d.ID, nil))
	got, err = s.GetDevice(ctx, a.org.ID, d.ID)
	must(t, err)
	if got.Interfaces == nil || len(got.Interfaces) != 0 {
		t.Fatalf("interfaces after nil: %#v, want empty non-nil", got.Interfaces)
	}

	// Clearing the config stores an empty list.
	must(t, s.SetInterfaceConfig(ctx, a.org.ID, d.ID, nil))
	got, err = s.GetDevice(ctx, a.org.ID, d.ID)
	must(t, err)
	if got.InterfaceConfig == nil || len(got.InterfaceConfig) != 0 {
		t.Fatalf("config after clearing: %#v, want empty non-nil", got.InterfaceConfig)
	}

	// Listing returns the config as well.
	page, err := s.ListDevices(ctx, a.org.ID, store.ListOptions{Filter: map[string]string{"machine_id": "m1"}})
	must(t, err)
	if page.Total != 1 || page.Items[0].InterfaceConfig == nil {
		t.Fatalf("list: %+v", page)
	}
}

func testTunnels(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := newTenant(t, s, "a")
	b := newTenant(t, s, "b")
	a1 := newDevice(t, s, a.org.ID, "a-dev-1")
	a2 := newDevice(t, s, a.org.ID, "a-dev-2")
	a3 := newDevice(t, s, a.org.ID, "a-dev-3")
	b1 := newDevice(t, s, b.org.ID, "b-dev-1")
	b2 := newDevice(t, s, b.org.ID, "b-dev-2")
	label := store.PathLabel{OrgID: a.org.ID, Name: "MPLS", Type: store.LabelTunnel}
	must(t, s.CreatePathLabel(ctx, &label))

	t12 := store.Tunnel{OrgID: a.org.ID, Number: 1, DeviceA: a1.ID, InterfaceA: "eth0", DeviceB: a2.ID, InterfaceB: "eth0",
		LabelID: label.ID, Transform: "aes128gcm16", SealedKeys: "sealed-1"}
	must(t, s.CreateTunnel(ctx, &t12))
	if t12.ID == "" || t12.CreatedAt.IsZero() || !t12.UpdatedAt.Equal(t12.CreatedAt) || !t12.KeysRotatedAt.Equal(t12.CreatedAt) {
		t.Fatalf("create did not fill id/timestamps: %+v", t12)
	}
	got, err := s.GetTunnel(ctx, a.org.ID, t12.ID)
	must(t, err)
	same(t, got, t12, "tunnel")

	rotated := time.Date(2026, 3, 1, 12, 0, 0, 123456000, time.UTC)
	t13 := store.Tunnel{OrgID: a.org.ID, Number: 2, DeviceA: a1.ID, InterfaceA: "eth1", DeviceB: a3.ID, InterfaceB: "eth0",
		Transform: "aes128cbc-sha256", KeysRotatedAt: rotated, KeyGeneration: 3}
	must(t, s.CreateTunnel(ctx, &t13))
	t23 := store.Tunnel{OrgID: a.org.ID, Number: 5, DeviceA: a2.ID, InterfaceA: "eth0", DeviceB: a3.ID, InterfaceB: "eth0", Transform: "aes128gcm16"}
	must(t, s.CreateTunnel(ctx, &t23))
	got, err = s.GetTunnel(ctx, a.org.ID, t13.ID)
	must(t, err)
	if !got.KeysRotatedAt.Equal(rotated) || got.KeyGeneration != 3 || got.LabelID != "" {
		t.Fatalf("tunnel 2 as stored: %+v", got)
	}

	// Numbers are per organization: org B may use 1 as well.
	tb := store.Tunnel{OrgID: b.org.ID, Number: 1, DeviceA: b1.ID, InterfaceA: "eth0", DeviceB: b2.ID, InterfaceB: "eth0", Transform: "aes128gcm16"}
	must(t, s.CreateTunnel(ctx, &tb))

	base := store.Tunnel{OrgID: a.org.ID, Number: 9, DeviceA: a1.ID, InterfaceA: "eth2", DeviceB: a2.ID, InterfaceB: "eth2", Transform: "aes128gcm16"}
	with := func(f func(*store.Tunnel)) *store.Tunnel {
		x := base
		f(&x)
		return &x
	}
	invalids := []struct {
		name  string
		t     *store.Tunnel
		field string
	}{
		{"no org", with(func(x *store.Tunnel) { x.OrgID = "" }), "org_id"},
		{"number 0", with(func(x *store.Tunnel) { x.Number = 0 }), "number"},
		{"negative number", with(func(x *store.Tunnel) { x.Number = -1 }), "number"},
		{"devices out of order", with(func(x *store.Tunnel) { x.DeviceA, x.DeviceB = a2.ID, a1.ID }), "device_b"},
		{"same device", with(func(x *store.Tunnel) { x.DeviceB = a1.ID }), "device_b"},
		{"no device a", with(func(x *store.Tunnel) { x.DeviceA = "" }), "device_a"},
		{"no interface b", with(func(x *store.Tunnel) { x.InterfaceB = " " }), "interface_b"},
		{"no transform", with(func(x *store.Tunnel) { x.Transform = "" }), "transform"},
		{"bad phase", with(func(x *store.Tunnel) { x.RotationPhase = "half" }), "rotation_phase"},
		{"device b of other org", with(func(x *store.Tunnel) { x.DeviceB = b1.ID }), "device_b"},
		{"device a of other org", with(func(x *store.Tunnel) { x.OrgID, x.DeviceA, x.DeviceB = b.org.ID, a1.ID, b1.ID }), "device_a"},
		{"missing device b", with(func(x *store.Tunnel) { x.DeviceB = "a-dev-9" }), "device_b"},
	}
	for _, c := range invalids {
		wantField(t, s.CreateTunnel(ctx, c.t), c.field, c.name)
	}
	wantConflict(t, s.CreateTunnel(ctx, with(func(x *store.Tunnel) { x.Number = 1 })), "number", "taken number")
	wantConflict(t, s.CreateTunnel(ctx, with(func(x *store.Tunnel) { x.InterfaceA, x.InterfaceB = "eth0", "eth0" })), "interface_b", "same pair twice")
	wantConflict(t, s.CreateTunnel(ctx, with(func(x *store.Tunnel) { x.ID = t12.ID })), "id", "same id")

	nums, err := s.TunnelNumbers(ctx, a.org.ID)
	must(t, err)
	same(t, nums, []int{1, 2, 5}, "numbers in use")

	// Lists: filters and sorts.
	lists := []struct {
		name string
		opt  store.ListOptions
		want []int
	}{
		{"all", store.ListOptions{}, []int{1, 2, 5}},
		{"desc", store.ListOptions{Sort: "number", Desc: true}, []int{5, 2, 1}},
		{"by rotation", store.ListOptions{Sort: "keys_rotated_at"}, []int{2, 1, 5}},
		{"device either end a", store.ListOptions{Filter: map[string]string{"device_id": a1.ID}}, []int{1, 2}},
		{"device either end b", store.ListOptions{Filter: map[string]string{"device_id": a3.ID}}, []int{2, 5}},
		{"device and interface", store.ListOptions{Filter: map[string]string{"device_id": a1.ID, "interface": "eth1"}}, []int{2}},
		{"device and interface b end", store.ListOptions{Filter: map[string]string{"device_id": a3.ID, "interface": "eth0"}}, []int{2, 5}},
		{"interface either end", store.ListOptions{Filter: map[string]string{"interface": "eth1"}}, []int{2}},
		{"number", store.ListOptions{Filter: map[string]string{"number": "5"}}, []int{5}},
		{"label", store.ListOptions{Filter: map[string]string{"label_id": label.ID}}, []int{1}},
		{"device of other org", store.ListOptions{Filter: map[string]string{"device_id": b1.ID}}, []int{}},
		{"paged", store.ListOptions{Limit: 1, Offset: 1}, []int{2}},
	}
	for _, c := range lists {
		page, err := s.ListTunnels(ctx, a.org.ID, c.opt)
		must(t, err)
		same(t, mapItems(page.Items, tunnelNumber), c.want, c.name)
		if c.opt.Limit == 0 && page.Total != len(c.want) {
			t.Fatalf("%s: total %d, want %d", c.name, page.Total, len(c.want))
		}
		if c.opt.Limit == 1 && page.Total != 3 {
			t.Fatalf("%s: total %d, want 3", c.name, page.Total)
		}
	}
	_, err = s.ListTunnels(ctx, a.org.ID, store.ListOptions{Filter: map[string]string{"number": "five"}})
	wantField(t, err, "number", "non-integer number filter")
	_, err = s.ListTunnels(ctx, a.org.ID, store.ListOptions{Filter: map[string]string{"device": a1.ID}})
	wantField(t, err, "device", "unknown filter")
	_, err = s.ListTunnels(ctx, a.org.ID, store.ListOptions{Sort: "label_id"})
	wantField(t, err, "sort", "unknown sort")

	// Key rotation state.
	upd := store.Tunnel{ID: t12.ID, OrgID: a.org.ID, SealedKeys: "sealed-2", KeyGeneration: 1, RotationPhase: store.RotationInbound, KeysRotatedAt: rotated}
	must(t, s.UpdateTunnelKeys(ctx, &upd))
	if upd.Number != 1 || upd.DeviceA != a1.ID || upd.LabelID != label.ID || upd.SealedKeys != "sealed-2" ||
		upd.RotationPhase != store.RotationInbound || !upd.KeysRotatedAt.Equal(rotated) || !upd.CreatedAt.Equal(t12.CreatedAt) ||
		upd.UpdatedAt.Before(t12.UpdatedAt) {
		t.Fatalf("after UpdateTunnelKeys: %+v", upd)
	}
	got, err = s.GetTunnel(ctx, a.org.ID, t12.ID)
	must(t, err)
	same(t, got, upd, "tunnel after key update")
	wantField(t, s.UpdateTunnelKeys(ctx, &store.Tunnel{ID: t12.ID, OrgID: a.org.ID, RotationPhase: "x"}), "rotation_phase", "bad phase")
	wantErr(t, s.UpdateTunnelKeys(ctx, &store.Tunnel{ID: "missing", OrgID: a.org.ID}), store.ErrNotFound, "update missing tunnel")

	// Organization isolation: org B can neither see nor touch A's tunnels.
	_, err = s.GetTunnel(ctx, b.org.ID, t12.ID)
	wantErr(t, err, store.ErrNotFound, "get from other org")
	page, err := s.ListTunnels(ctx, b.org.ID, store.ListOptions{})
	must(t, err)
	same(t, mapItems(page.Items, tunnelID), []string{tb.ID}, "org B's tunnels")
	page, err = s.ListTunnels(ctx, b.org.ID, store.ListOptions{Filter: map[string]string{"device_id": a1.ID}})
	must(t, err)
	if page.Total != 0 {
		t.Fatalf("org B lists A's device tunnels: %+v", page)
	}
	nums, err = s.TunnelNumbers(ctx, b.org.ID)
	must(t, err)
	same(t, nums, []int{1}, "org B's numbers")
	wantErr(t, s.UpdateTunnelKeys(ctx, &store.Tunnel{ID: t12.ID, OrgID: b.org.ID, SealedKeys: "stolen"}), store.ErrNotFound, "update keys from other org")
	wantErr(t, s.DeleteTunnel(ctx, b.org.ID, t12.ID), store.ErrNotFound, "delete from other org")
	got, err = s.GetTunnel(ctx, a.org.ID, t12.ID)
	must(t, err)
	same(t, got, upd, "tunnel after other org's attempts")

	// Deleting frees the number.
	must(t, s.DeleteTunnel(ctx, a.org.ID, t13.ID))
	wantErr(t, s.DeleteTunnel(ctx, a.org.ID, t13.ID), store.ErrNotFound, "delete twice")
	_, err = s.GetTunnel(ctx, a.org.ID, t13.ID)
	wantErr(t, err, store.ErrNotFound, "get deleted")
	nums, err = s.TunnelNumbers(ctx, a.org.ID)
	must(t, err)
	same(t, nums, []int{1, 5}, "numbers after delete")
	again := store.Tunnel{OrgID: a.org.ID, Number: 2, DeviceA: a1.ID, InterfaceA: "eth1", DeviceB: a3.ID, InterfaceB: "eth0", Transform: "aes128gcm16"}
	must(t, s.CreateTunnel(ctx, &again))

	// A tunnel goes with either of its devices.
	must(t, s.DeleteDevice(ctx, a.org.ID, a3.ID))
	page, err = s.ListTunnels(ctx, a.org.ID, store.ListOptions{})
	must(t, err)
	same(t, mapItems(page.Items, tunnelNumber), []int{1}, "tunnels after deleting device 3")
	must(t, s.DeleteDevice(ctx, a.org.ID, a1.ID))
	nums, err = s.TunnelNumbers(ctx, a.org.ID)
	must(t, err)
	same(t, nums, []int{}, "numbers after deleting device 1")
	// and with the organization.
	must(t, s.DeleteOrganization(ctx, b.org.ID))
	_, err = s.GetTunnel(ctx, b.org.ID, tb.ID)
	wantErr(t, err, store.ErrNotFound, "tunnel of deleted org")
}

func testTunnelsToRotate(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := newTenant(t, s, "a")
	b := newTenant(t, s, "b")
	base := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	devs := map[string][]store.Device{
		a.org.ID: {newDevice(t, s, a.org.ID, "a-1"), newDevice(t, s, a.org.ID, "a-2")},
		b.org.ID: {newDevice(t, s, b.org.ID, "b-1"), newDevice(t, s, b.org.ID, "b-2")},
	}
	mk := func(org string, num int, hours int, phase string) store.Tunnel {
		d := devs[org]
		x := store.Tunnel{OrgID: org, Number: num, DeviceA: d[0].ID, InterfaceA: "eth" + string(rune('0'+num)), DeviceB: d[1].ID,
			InterfaceB: "eth0", Transform: "aes128gcm16", RotationPhase: phase, KeysRotatedAt: base.Add(time.Duration(hours) * time.Hour)}
		must(t, s.CreateTunnel(ctx, &x))
		return x
	}
	// Rotated at base+h hours.
	a1 := mk(a.org.ID, 1, 5, "")
	a2 := mk(a.org.ID, 2, 1, "")
	a3 := mk(a.org.ID, 3, 30, store.RotationInbound) // recent, half done
	a4 := mk(a.org.ID, 4, 40, store.RotationInbound) // too recent even for the phase
	b1 := mk(b.org.ID, 1, 3, "")
	b2 := mk(b.org.ID, 2, 50, "") // recent, settled
	_, _ = a4, b2

	olderThan := base.Add(10 * time.Hour)   // settled tunnels rotated before this are due
	phaseBefore := base.Add(35 * time.Hour) // half-done rotations before this are due
	cases := []struct {
		name  string
		limit int
		want  []string
	}{
		{"all due, oldest first, every org", 10, []string{a2.ID, b1.ID, a1.ID, a3.ID}},
		{"limit", 2, []string{a2.ID, b1.ID}},
		{"no limit given", 0, []string{a2.ID, b1.ID, a1.ID, a3.ID}},
	}
	for _, c := range cases {
		due, err := s.TunnelsToRotate(ctx, olderThan, phaseBefore, c.limit)
		must(t, err)
		same(t, mapItems(due, tunnelID), c.want, c.name)
	}
	// Boundaries are exclusive.
	due, err := s.TunnelsToRotate(ctx, base.Add(time.Hour), base.Add(30*time.Hour), 10)
	must(t, err)
	same(t, mapItems(due, tunnelID), []string{}, "exclusive boundaries")
	// Once rotated (settled, recent), a tunnel is no longer due.
	a2.KeysRotatedAt, a2.KeyGeneration = base.Add(20*time.Hour), 1
	must(t, s.UpdateTunnelKeys(ctx, &a2))
	a3.KeysRotatedAt, a3.RotationPhase = base.Add(31*time.Hour), ""
	must(t, s.UpdateTunnelKeys(ctx, &a3))
	due, err = s.TunnelsToRotate(ctx, olderThan, phaseBefore, 10)
	must(t, err)
	same(t, mapItems(due, tunnelID), []string{b1.ID, a1.ID}, "after rotating")
	if due[0].SealedKeys != b1.SealedKeys || due[0].OrgID != b.org.ID {
		t.Fatalf("due tunnel is not the full row: %+v", due[0])
	}
}

func testStaticRoutes(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := newTenant(t, s, "a")
	b := newTenant(t, s, "b")
	d1 := newDevice(t, s, a.org.ID, "a-dev-1")
	d2 := newDevice(t, s, a.org.ID, "a-dev-2")
	db := newDevice(t, s, b.org.ID, "b-dev-1")

	r1 := store.StaticRoute{ID: "a-route-1", OrgID: a.org.ID, DeviceID: d1.ID, Destination: "172.16.0.0/16", Gateway: "10.1.0.254", Metric: 10, Description: "lab"}
	must(t, s.CreateStaticRoute(ctx, &r1))
	if r1.ID == "" || r1.CreatedAt.IsZero() || !r1.UpdatedAt.Equal(r1.CreatedAt) {
		t.Fatalf("create did not fill id/timestamps: %+v", r1)
	}
	got, err := s.GetStaticRoute(ctx, a.org.ID, r1.ID)
	must(t, err)
	same(t, got, r1, "route")
	r2 := store.StaticRoute{ID: "a-route-2", OrgID: a.org.ID, DeviceID: d1.ID, Destination: "172.16.0.0/16", Tunnel: 3, Metric: 20}
	must(t, s.CreateStaticRoute(ctx, &r2))
	r3 := store.StaticRoute{OrgID: a.org.ID, DeviceID: d2.ID, Destination: "0.0.0.0/0", Gateway: "192.0.2.1"}
	must(t, s.CreateStaticRoute(ctx, &r3))
	rb := store.StaticRoute{OrgID: b.org.ID, DeviceID: db.ID, Destination: "172.16.0.0/16", Gateway: "10.9.0.1", Metric: 10}
	must(t, s.CreateStaticRoute(ctx, &rb))

	base := store.StaticRoute{OrgID: a.org.ID, DeviceID: d2.ID, Destination: "10.50.0.0/16", Gateway: "10.1.0.1"}
	with := func(f func(*store.StaticRoute)) *store.StaticRoute {
		x := base
		f(&x)
		return &x
	}
	invalids := []struct {
		name  string
		r     *store.StaticRoute
		field string
	}{
		{"no org", with(func(x *store.StaticRoute) { x.OrgID = "" }), "org_id"},
		{"no device", with(func(x *store.StaticRoute) { x.DeviceID = "" }), "device_id"},
		{"no destination", with(func(x *store.StaticRoute) { x.Destination = " " }), "destination"},
		{"gateway and tunnel", with(func(x *store.StaticRoute) { x.Tunnel = 1 }), "gateway"},
		{"negative metric", with(func(x *store.StaticRoute) { x.Metric = -1 }), "metric"},
		{"negative tunnel", with(func(x *store.StaticRoute) { x.Gateway, x.Tunnel = "", -2 }), "tunnel"},
		{"device of other org", with(func(x *store.StaticRoute) { x.DeviceID = db.ID }), "device_id"},
		{"missing device", with(func(x *store.StaticRoute) { x.DeviceID = "nope" }), "device_id"},
	}
	for _, c := range invalids {
		wantField(t, s.CreateStaticRoute(ctx, c.r), c.field, c.name)
	}
	wantConflict(t, s.CreateStaticRoute(ctx, &store.StaticRoute{OrgID: a.org.ID, DeviceID: d1.ID, Destination: "172.16.0.0/16", Gateway: "10.1.0.9", Metric: 10}),
		"metric", "same destination and metric")

	lists := []struct {
		name string
		opt  store.ListOptions
		want []string
	}{
		{"all by destination (ties by id)", store.ListOptions{}, []string{r3.ID, r1.ID, r2.ID}},
		{"by metric desc", store.ListOptions{Sort: "metric", Desc: true}, []string{r2.ID, r1.ID, r3.ID}},
		{"device", store.ListOptions{Filter: map[string]string{"device_id": d1.ID}, Sort: "metric"}, []string{r1.ID, r2.ID}},
		{"destination", store.ListOptions{Filter: map[string]string{"destination": "0.0.0.0/0"}}, []string{r3.ID}},
		{"tunnel", store.ListOptions{Filter: map[string]string{"tunnel": "3"}}, []string{r2.ID}},
		{"device of other org", store.ListOptions{Filter: map[string]string{"device_id": db.ID}}, []string{}},
	}
	for _, c := range lists {
		page, err := s.ListStaticRoutes(ctx, a.org.ID, c.opt)
		must(t, err)
		same(t, mapItems(page.Items, routeID), c.want, c.name)
		if page.Total != len(c.want) {
			t.Fatalf("%s: total %d, want %d", c.name, page.Total, len(c.want))
		}
	}
	_, err = s.ListStaticRoutes(ctx, a.org.ID, store.ListOptions{Filter: map[string]string{"tunnel": "x"}})
	wantField(t, err, "tunnel", "non-integer tunnel filter")
	_, err = s.ListStaticRoutes(ctx, a.org.ID, store.ListOptions{Sort: "gateway"})
	wantField(t, err, "sort", "unknown sort")

	// Update: everything but the device; the struct comes back as stored.
	upd := store.StaticRoute{ID: r1.ID, OrgID: a.org.ID, DeviceID: d2.ID, Destination: "172.17.0.0/16", Tunnel: 4, Metric: 5, Description: "moved"}
	must(t, s.UpdateStaticRoute(ctx, &upd))
	if upd.DeviceID != d1.ID || upd.Destination != "172.17.0.0/16" || upd.Gateway != "" || upd.Tunnel != 4 || upd.Metric != 5 ||
		upd.Description != "moved" || !upd.CreatedAt.Equal(r1.CreatedAt) || upd.UpdatedAt.Before(r1.UpdatedAt) {
		t.Fatalf("after update: %+v", upd)
	}
	got, err = s.GetStaticRoute(ctx, a.org.ID, r1.ID)
	must(t, err)
	same(t, got, upd, "route after update")
	clash := upd
	clash.Destination, clash.Tunnel, clash.Metric = "172.16.0.0/16", 3, 20
	wantConflict(t, s.UpdateStaticRoute(ctx, &clash), "metric", "update onto another route")
	wantField(t, s.UpdateStaticRoute(ctx, &store.StaticRoute{ID: r1.ID, OrgID: a.org.ID, Destination: "x", Gateway: "g", Tunnel: 1}), "gateway", "update both")
	wantErr(t, s.UpdateStaticRoute(ctx, &store.StaticRoute{ID: "nope", OrgID: a.org.ID, Destination: "10.0.0.0/8"}), store.ErrNotFound, "update missing")

	// Organization isolation.
	_, err = s.GetStaticRoute(ctx, b.org.ID, r1.ID)
	wantErr(t, err, store.ErrNotFound, "get from other org")
	page, err := s.ListStaticRoutes(ctx, b.org.ID, store.ListOptions{})
	must(t, err)
	same(t, mapItems(page.Items, routeID), []string{rb.ID}, "org B's routes")
	page, err = s.ListStaticRoutes(ctx, b.org.ID, store.ListOptions{Filter: map[string]string{"device_id": d1.ID}})
	must(t, err)
	if page.Total != 0 {
		t.Fatalf("org B lists A's device routes: %+v", page)
	}
	wantErr(t, s.UpdateStaticRoute(ctx, &store.StaticRoute{ID: r1.ID, OrgID: b.org.ID, Destination: "10.0.0.0/8"}), store.ErrNotFound, "update from other org")
	wantErr(t, s.DeleteStaticRoute(ctx, b.org.ID, r1.ID), store.ErrNotFound, "delete from other org")
	got, err = s.GetStaticRoute(ctx, a.org.ID, r1.ID)
	must(t, err)
	same(t, got, upd, "route after other org's attempts")

	must(t, s.DeleteStaticRoute(ctx, a.org.ID, r3.ID))
	wantErr(t, s.DeleteStaticRoute(ctx, a.org.ID, r3.ID), store.ErrNotFound, "delete twice")

	// Routes go with their device.
	must(t, s.DeleteDevice(ctx, a.org.ID, d1.ID))
	page, err = s.ListStaticRoutes(ctx, a.org.ID, store.ListOptions{})
	must(t, err)
	if page.Total != 0 {
		t.Fatalf("routes after deleting their device: %+v", page)
	}
}

// testTunnelNumberRace: callers allocate numbers from TunnelNumbers and may
// race; of concurrent creations with one number exactly one wins and the
// others get ErrConflict on number (they retry with another).
func testTunnelNumberRace(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := newTenant(t, s, "a")
	d1 := newDevice(t, s, a.org.ID, "a-dev-1")
	d2 := newDevice(t, s, a.org.ID, "a-dev-2")
	const workers = 8
	var wg sync.WaitGroup
	errs := make([]error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			x := store.Tunnel{OrgID: a.org.ID, Number: 7, DeviceA: d1.ID, InterfaceA: fmt.Sprintf("eth%d", w),
				DeviceB: d2.ID, InterfaceB: "eth0", Transform: "aes128gcm16"}
			errs[w] = s.CreateTunnel(ctx, &x)
		}()
	}
	wg.Wait()
	won := 0
	for w, err := range errs {
		switch {
		case err == nil:
			won++
		default:
			wantConflict(t, err, "number", fmt.Sprintf("worker %d", w))
		}
	}
	if won != 1 {
		t.Fatalf("%d creations of number 7 succeeded, want 1", won)
	}
	nums, err := s.TunnelNumbers(ctx, a.org.ID)
	must(t, err)
	same(t, nums, []int{7}, "numbers after the race")
}
