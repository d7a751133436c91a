package storetest

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/trellis-sdwan/trellis/manage/store"
)

func testAudit(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := newTenant(t, s, "a")
	b := newTenant(t, s, "b")
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

	var entries []store.AuditEntry
	for i, act := range []string{"device.approve", "device.delete", "label.create", "device.approve"} {
		e := store.AuditEntry{
			AccountID: a.acct.ID, OrgID: a.org.ID, ActorType: "user", ActorID: fmt.Sprintf("u%d", i%2), ActorName: "Alice",
			Action: act, ObjectType: "device", ObjectID: fmt.Sprintf("d%d", i), IP: "192.0.2.7",
			Details:   json.RawMessage(fmt.Sprintf(`{ "n": %d, "name": "x" }`, i)),
			CreatedAt: t0.Add(time.Duration(i) * time.Minute),
		}
		must(t, s.AppendAudit(ctx, &e))
		if i > 0 && e.ID <= entries[i-1].ID {
			t.Fatalf("audit ids not increasing: %d after %d", e.ID, entries[i-1].ID)
		}
		entries = append(entries, e)
	}
	// Details come back as written (compacted), key order included.
	accountLevel := store.AuditEntry{AccountID: a.acct.ID, ActorType: "system", Action: "account.update", CreatedAt: t0.Add(10 * time.Minute),
		Details: json.RawMessage(`{"zeta": [1, 2], "alpha": {"b": null, "a": "é"}}`)}
	must(t, s.AppendAudit(ctx, &accountLevel))
	other := store.AuditEntry{AccountID: b.acct.ID, OrgID: b.org.ID, Action: "device.approve"}
	must(t, s.AppendAudit(ctx, &other))
	wantErrMention(t, s.AppendAudit(ctx, &store.AuditEntry{AccountID: a.acct.ID}), store.ErrInvalid, "action", "entry without action")
	wantErrMention(t, s.AppendAudit(ctx, &store.AuditEntry{AccountID: a.acct.ID, Action: "x", Details: json.RawMessage(`{"a":`)}), store.ErrInvalid, "details", "entry with broken JSON")

	// Default order: newest first.
	page, err := s.ListAudit(ctx, a.acct.ID, store.ListOptions{})
	must(t, err)
	if page.Total != 5 {
		t.Fatalf("total %d, want 5", page.Total)
	}
	want := []store.AuditEntry{accountLevel, entries[3], entries[2], entries[1], entries[0]}
	same(t, page.Items, want, "audit newest first")
	if got := string(page.Items[0].Details); got != `{"zeta":[1,2],"alpha":{"b":null,"a":"é"}}` {
		t.Fatalf("details = %s", got)
	}
	var details map[string]any
	must(t, json.Unmarshal(page.Items[4].Details, &details))
	if details["n"] != float64(0) || details["name"] != "x" {
		t.Fatalf("details %s", page.Items[4].Details)
	}

	count := func(filter map[string]string) int {
		t.Helper()
		p, err := s.ListAudit(ctx, a.acct.ID, store.ListOptions{Filter: filter})
		must(t, err)
		return p.Total
	}
	for _, tc := range []struct {
		filter map[string]string
		want   int
	}{
		{map[string]string{"org_id": a.org.ID}, 4},
		{map[string]string{"org_id": b.org.ID}, 0}, // another account's organization
		{map[string]string{"action": "device.approve"}, 2},
		{map[string]string{"actor_id": "u1"}, 2},
		{map[string]string{"object_type": "device", "object_id": "d2"}, 1},
		{map[string]string{"since": t0.Add(time.Minute).Format(time.RFC3339)}, 4},
		{map[string]string{"until": t0.Add(time.Minute).Format(time.RFC3339)}, 2},
		{map[string]string{"since": t0.Add(time.Minute).Format(time.RFC3339), "until": "2026-03-01T12:02:00+00:00"}, 2},
		{map[string]string{"since": "2026-03-01T13:01:30+01:00"}, 3}, // other time zone
	} {
		if got := count(tc.filter); got != tc.want {
			t.Errorf("audit %v: %d entries, want %d", tc.filter, got, tc.want)
		}
	}
	_, err = s.ListAudit(ctx, a.acct.ID, store.ListOptions{Filter: map[string]string{"since": "yesterday"}})
	wantErrMention(t, err, store.ErrInvalid, "since", "bad since")

	asc, err := s.ListAudit(ctx, a.acct.ID, store.ListOptions{Sort: "created_at", Limit: 2})
	must(t, err)
	same(t, asc.Items, entries[:2], "audit oldest first")
	pb, err := s.ListAudit(ctx, b.acct.ID, store.ListOptions{})
	must(t, err)
	same(t, pb.Items, []store.AuditEntry{other}, "audit of account b")
}

func testDevices(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := newTenant(t, s, "a")
	b := newTenant(t, s, "b")
	seen := time.Now().Add(-time.Minute)

	d := store.Device{
		OrgID: a.org.ID, MachineID: "machine-1", Name: "Paris Edge", Description: "rack 2", Site: "paris",
		Hostname: "edge-par", OS: "Debian 12", Versions: map[string]string{"edge": "0.1.0", "kernel": "6.1"},
		Interfaces: []store.Interface{
			{Name: "eth0", MAC: "52:54:00:00:00:01", Addresses: []string{"192.0.2.10/24"}, Gateway: "192.0.2.1", LinkUp: true, MTU: 1500},
			{Name: "eth1", MAC: "52:54:00:00:00:02"},
		},
		CredentialHash: "cred-1", LastSeenAt: &seen,
	}
	must(t, s.CreateDevice(ctx, &d))
	if d.Approval != store.ApprovalPending || d.ConnState != store.ConnDisconnected || d.SyncStatus != store.SyncPending {
		t.Fatalf("defaults: %+v", d)
	}
	got, err := s.GetDevice(ctx, a.org.ID, d.ID)
	must(t, err)
	same(t, got, d, "device")
	got, err = s.GetDeviceByMachineID(ctx, a.org.ID, "machine-1")
	must(t, err)
	same(t, got, d, "device by machine id")
	got, err = s.GetDeviceByCredentialHash(ctx, "cred-1")
	must(t, err)
	same(t, got, d, "device by credential")
	_, err = s.GetDeviceByCredentialHash(ctx, "")
	wantErr(t, err, store.ErrNotFound, "empty credential")

	// Machine ids are unique per organization only.
	wantErr(t, s.CreateDevice(ctx, &store.Device{OrgID: a.org.ID, MachineID: "machine-1"}), store.ErrConflict, "same machine id in one organization")
	same2 := store.Device{OrgID: b.org.ID, MachineID: "machine-1"}
	must(t, s.CreateDevice(ctx, &same2))
	wantErr(t, s.CreateDevice(ctx, &store.Device{OrgID: b.org.ID, MachineID: "m-x", CredentialHash: "cred-1"}), store.ErrConflict, "duplicate credential")
	// Devices without a credential do not collide.
	must(t, s.CreateDevice(ctx, &store.Device{OrgID: b.org.ID, MachineID: "m-y"}))
	must(t, s.CreateDevice(ctx, &store.Device{OrgID: b.org.ID, MachineID: "m-z"}))

	for _, tc := range []struct {
		name  string
		d     store.Device
		field string
	}{
		{"no machine id", store.Device{OrgID: a.org.ID}, "machine_id"},
		{"no org", store.Device{MachineID: "m"}, "org_id"},
		{"bad approval", store.Device{OrgID: a.org.ID, MachineID: "m", Approval: "maybe"}, "approval"},
		{"bad conn state", store.Device{OrgID: a.org.ID, MachineID: "m", ConnState: "up"}, "conn_state"},
		{"bad sync status", store.Device{OrgID: a.org.ID, MachineID: "m", SyncStatus: "ok"}, "sync_status"},
		{"missing org", store.Device{OrgID: "missing", MachineID: "m"}, ""},
	} {
		dev := tc.d
		wantErrMention(t, s.CreateDevice(ctx, &dev), store.ErrInvalid, tc.field, tc.name)
	}

	// Update everything mutable.
	d.Name, d.Site, d.Approval, d.ConnState = "Paris 1", "paris-2", store.ApprovalApproved, store.ConnConnected
	d.DesiredVersion, d.AppliedVersion, d.SyncStatus, d.SyncError = "v2", "v1", store.SyncFailed, "route: no such device"
	d.Versions = map[string]string{"edge": "0.2.0"}
	d.Interfaces = nil
	d.CredentialHash = "cred-2"
	d.LastSeenAt = nil
	must(t, s.UpdateDevice(ctx, &d))
	got, err = s.GetDevice(ctx, a.org.ID, d.ID)
	must(t, err)
	same(t, got, d, "updated device")
	_, err = s.GetDeviceByCredentialHash(ctx, "cred-1")
	wantErr(t, err, store.ErrNotFound, "old credential")
	clash := same2
	clash.MachineID = "m-y"
	wantErr(t, s.UpdateDevice(ctx, &clash), store.ErrConflict, "update to a taken machine id")
	wantErr(t, s.UpdateDevice(ctx, &store.Device{ID: "missing", OrgID: a.org.ID, MachineID: "q"}), store.ErrNotFound, "update missing device")

	n, err := s.CountDevicesInAccount(ctx, b.acct.ID)
	must(t, err)
	if n != 3 {
		t.Fatalf("devices in account b: %d, want 3", n)
	}

	// Filters.
	d2 := store.Device{OrgID: a.org.ID, MachineID: "machine-2", Name: "Lyon_edge 100%", Site: "lyon"}
	must(t, s.CreateDevice(ctx, &d2))
	for _, tc := range []struct {
		filter map[string]string
		want   []string
	}{
		{map[string]string{"approval": "pending"}, []string{d2.ID}},
		{map[string]string{"approval": "approved", "conn_state": "connected"}, []string{d.ID}},
		{map[string]string{"sync_status": "failed"}, []string{d.ID}},
		{map[string]string{"site": "lyon"}, []string{d2.ID}},
		{map[string]string{"name": "PARIS"}, []string{d.ID}},
		{map[string]string{"name": "1"}, []string{d.ID, d2.ID}},
		{map[string]string{"name": "100%"}, []string{d2.ID}},
		{map[string]string{"name": "%"}, []string{d2.ID}}, // a literal percent sign, not a wildcard
		{map[string]string{"name": "n_e"}, []string{d2.ID}},
		{map[string]string{"name": "s_1"}, nil}, // _ is literal too
		{map[string]string{"site": "nowhere"}, nil},
	} {
		page, err := s.ListDevices(ctx, a.org.ID, store.ListOptions{Filter: tc.filter})
		must(t, err)
		if tc.want == nil {
			tc.want = []string{}
		}
		same(t, ids(page.Items, deviceID), tc.want, fmt.Sprintf("devices %v", tc.filter))
	}

	wantErr(t, s.DeleteDevice(ctx, b.org.ID, d.ID), store.ErrNotFound, "delete through another organization")
	must(t, s.DeleteDevice(ctx, a.org.ID, d.ID))
	_, err = s.GetDevice(ctx, a.org.ID, d.ID)
	wantErr(t, err, store.ErrNotFound, "deleted device")
	wantErr(t, s.DeleteDevice(ctx, a.org.ID, d.ID), store.ErrNotFound, "delete deleted device")
}

func testOrgTokens(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := newTenant(t, s, "a")
	b := newTenant(t, s, "b")
	u := newUser(t, s, "t@example.com")

	t1 := store.OrgToken{OrgID: a.org.ID, Name: "image", TokenHash: "th1", CreatedBy: u.ID}
	must(t, s.CreateOrgToken(ctx, &t1))
	got, err := s.GetOrgToken(ctx, a.org.ID, t1.ID)
	must(t, err)
	same(t, got, t1, "token")
	got, err = s.GetOrgTokenByHash(ctx, "th1")
	must(t, err)
	same(t, got, t1, "token by hash")
	_, err = s.GetOrgTokenByHash(ctx, "nope")
	wantErr(t, err, store.ErrNotFound, "unknown token hash")
	wantErr(t, s.CreateOrgToken(ctx, &store.OrgToken{OrgID: b.org.ID, TokenHash: "th1"}), store.ErrConflict, "duplicate token hash")
	wantErrMention(t, s.CreateOrgToken(ctx, &store.OrgToken{OrgID: a.org.ID}), store.ErrInvalid, "token_hash", "token without hash")
	wantErr(t, s.CreateOrgToken(ctx, &store.OrgToken{OrgID: "missing", TokenHash: "q"}), store.ErrInvalid, "token of missing organization")

	t2 := store.OrgToken{OrgID: a.org.ID, Name: "spare", TokenHash: "th2"}
	must(t, s.CreateOrgToken(ctx, &t2))
	tb := store.OrgToken{OrgID: b.org.ID, Name: "image", TokenHash: "th3"}
	must(t, s.CreateOrgToken(ctx, &tb))

	at := time.Now()
	wantErr(t, s.RevokeOrgToken(ctx, b.org.ID, t1.ID, at), store.ErrNotFound, "revoke through another organization")
	must(t, s.RevokeOrgToken(ctx, a.org.ID, t1.ID, at))
	must(t, s.RevokeOrgToken(ctx, a.org.ID, t1.ID, at.Add(time.Hour)))
	got, err = s.GetOrgToken(ctx, a.org.ID, t1.ID)
	must(t, err)
	if got.RevokedAt == nil || !got.RevokedAt.Equal(at.Round(time.Microsecond)) {
		t.Fatalf("revoked_at %v, want the first revocation %v", got.RevokedAt, at)
	}
	wantErr(t, s.RevokeOrgToken(ctx, a.org.ID, "missing", at), store.ErrNotFound, "revoke missing token")

	for _, tc := range []struct {
		filter map[string]string
		want   []string
	}{
		{nil, []string{t1.ID, t2.ID}},
		{map[string]string{"revoked": "true"}, []string{t1.ID}},
		{map[string]string{"revoked": "0"}, []string{t2.ID}},
		{map[string]string{"name": "image"}, []string{t1.ID}},
	} {
		page, err := s.ListOrgTokens(ctx, a.org.ID, store.ListOptions{Filter: tc.filter})
		must(t, err)
		same(t, ids(page.Items, tokenID), tc.want, fmt.Sprintf("tokens %v", tc.filter))
	}
}

func testPathLabels(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := newTenant(t, s, "a")
	b := newTenant(t, s, "b")

	l := store.PathLabel{OrgID: a.org.ID, Name: "MPLS", Color: "#FF8800", Type: store.LabelTunnel, Description: "carrier"}
	must(t, s.CreatePathLabel(ctx, &l))
	if l.Color != "#ff8800" {
		t.Fatalf("color not lower-cased: %q", l.Color)
	}
	got, err := s.GetPathLabel(ctx, a.org.ID, l.ID)
	must(t, err)
	same(t, got, l, "label")

	wantErr(t, s.CreatePathLabel(ctx, &store.PathLabel{OrgID: a.org.ID, Name: "MPLS", Type: store.LabelDIA}), store.ErrConflict, "duplicate name in one organization")
	must(t, s.CreatePathLabel(ctx, &store.PathLabel{OrgID: b.org.ID, Name: "MPLS", Type: store.LabelDIA}))
	for _, tc := range []struct {
		name  string
		l     store.PathLabel
		field string
	}{
		{"bad type", store.PathLabel{OrgID: a.org.ID, Name: "x", Type: "vpn"}, "type"},
		{"bad color", store.PathLabel{OrgID: a.org.ID, Name: "x", Type: store.LabelDIA, Color: "red"}, "color"},
		{"no name", store.PathLabel{OrgID: a.org.ID, Type: store.LabelDIA}, "name"},
		{"no org", store.PathLabel{Name: "x", Type: store.LabelDIA}, "org_id"},
	} {
		pl := tc.l
		wantErrMention(t, s.CreatePathLabel(ctx, &pl), store.ErrInvalid, tc.field, tc.name)
	}

	lte := store.PathLabel{OrgID: a.org.ID, Name: "LTE", Type: store.LabelDIA}
	must(t, s.CreatePathLabel(ctx, &lte))
	bb := store.PathLabel{OrgID: a.org.ID, Name: "Broadband", Type: store.LabelTunnel, Color: "#00aa00"}
	must(t, s.CreatePathLabel(ctx, &bb))

	page, err := s.ListPathLabels(ctx, a.org.ID, store.ListOptions{})
	must(t, err)
	same(t, ids(page.Items, labelName), []string{"Broadband", "LTE", "MPLS"}, "labels (default sort by name)")
	page, err = s.ListPathLabels(ctx, a.org.ID, store.ListOptions{Filter: map[string]string{"type": "tunnel"}})
	must(t, err)
	same(t, ids(page.Items, labelName), []string{"Broadband", "MPLS"}, "tunnel labels")
	page, err = s.ListPathLabels(ctx, a.org.ID, store.ListOptions{Filter: map[string]string{"name": "LTE"}})
	must(t, err)
	same(t, ids(page.Items, labelName), []string{"LTE"}, "labels by name")

	lte.Name, lte.Type, lte.Color, lte.Description = "4G", store.LabelTunnel, "#123456", "backup"
	must(t, s.UpdatePathLabel(ctx, &lte))
	got, err = s.GetPathLabel(ctx, a.org.ID, lte.ID)
	must(t, err)
	same(t, got, lte, "updated label")
	lte.Name = "MPLS"
	wantErr(t, s.UpdatePathLabel(ctx, &lte), store.ErrConflict, "rename to a taken name")
	lte.Name = "4G"
	lte.Type = "bogus"
	wantErr(t, s.UpdatePathLabel(ctx, &lte), store.ErrInvalid, "update with bad type")

	wantErr(t, s.DeletePathLabel(ctx, b.org.ID, l.ID), store.ErrNotFound, "delete through another organization")
	must(t, s.DeletePathLabel(ctx, a.org.ID, l.ID))
	_, err = s.GetPathLabel(ctx, a.org.ID, l.ID)
	wantErr(t, err, store.ErrNotFound, "deleted label")
	wantErr(t, s.DeletePathLabel(ctx, a.org.ID, l.ID), store.ErrNotFound, "delete deleted label")
}

// testOrgIsolation uses organization B's id with organization A's objects on
// every organization-scoped method: each must answer ErrNotFound and leave
// A's objects untouched, and B's lists must never show A's objects.
func testOrgIsolation(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := newTenant(t, s, "a")
	b := newTenant(t, s, "b")

	d := store.Device{OrgID: a.org.ID, MachineID: "ma", Name: "a-dev", Site: "s"}
	must(t, s.CreateDevice(ctx, &d))
	tok := store.OrgToken{OrgID: a.org.ID, Name: "a-tok", TokenHash: "a-hash"}
	must(t, s.CreateOrgToken(ctx, &tok))
	l := store.PathLabel{OrgID: a.org.ID, Name: "a-label", Type: store.LabelTunnel}
	must(t, s.CreatePathLabel(ctx, &l))
	// B has objects of its own so its lists are not trivially empty.
	must(t, s.CreateDevice(ctx, &store.Device{OrgID: b.org.ID, MachineID: "mb"}))
	must(t, s.CreateOrgToken(ctx, &store.OrgToken{OrgID: b.org.ID, TokenHash: "b-hash"}))
	must(t, s.CreatePathLabel(ctx, &store.PathLabel{OrgID: b.org.ID, Name: "b-label", Type: store.LabelDIA}))

	B := b.org.ID
	hijackDev := d
	hijackDev.OrgID = B
	hijackDev.Name = "hijacked"
	hijackLabel := l
	hijackLabel.OrgID = B
	hijackLabel.Name = "hijacked"
	calls := map[string]func() error{
		"GetDevice":            func() error { _, err := s.GetDevice(ctx, B, d.ID); return err },
		"GetDeviceByMachineID": func() error { _, err := s.GetDeviceByMachineID(ctx, B, d.MachineID); return err },
		"UpdateDevice":         func() error { x := hijackDev; return s.UpdateDevice(ctx, &x) },
		"DeleteDevice":         func() error { return s.DeleteDevice(ctx, B, d.ID) },
		"GetOrgToken":          func() error { _, err := s.GetOrgToken(ctx, B, tok.ID); return err },
		"RevokeOrgToken":       func() error { return s.RevokeOrgToken(ctx, B, tok.ID, time.Now()) },
		"GetPathLabel":         func() error { _, err := s.GetPathLabel(ctx, B, l.ID); return err },
		"UpdatePathLabel":      func() error { x := hijackLabel; return s.UpdatePathLabel(ctx, &x) },
		"DeletePathLabel":      func() error { return s.DeletePathLabel(ctx, B, l.ID) },
	}
	for name, call := range calls {
		wantErr(t, call(), store.ErrNotFound, name+" with another organization's id")
	}

	gotD, err := s.GetDevice(ctx, a.org.ID, d.ID)
	must(t, err)
	same(t, gotD, d, "device after cross-organization attempts")
	gotT, err := s.GetOrgToken(ctx, a.org.ID, tok.ID)
	must(t, err)
	same(t, gotT, tok, "token after cross-organization attempts")
	gotL, err := s.GetPathLabel(ctx, a.org.ID, l.ID)
	must(t, err)
	same(t, gotL, l, "label after cross-organization attempts")

	// Lists of B, with every filter that would match A's objects.
	devs, err := s.ListDevices(ctx, B, store.ListOptions{Limit: store.MaxListLimit})
	must(t, err)
	for _, x := range devs.Items {
		if x.OrgID != B {
			t.Fatalf("B's device list shows %+v", x)
		}
	}
	for _, f := range []map[string]string{{"name": "a-dev"}, {"site": "s"}, {"approval": "pending"}} {
		p, err := s.ListDevices(ctx, B, store.ListOptions{Filter: f})
		must(t, err)
		for _, x := range p.Items {
			if x.ID == d.ID {
				t.Fatalf("B's device list with %v shows A's device", f)
			}
		}
	}
	toks, err := s.ListOrgTokens(ctx, B, store.ListOptions{Filter: map[string]string{"name": "a-tok"}})
	must(t, err)
	if toks.Total != 0 {
		t.Fatalf("B's token list shows A's token: %+v", toks)
	}
	labels, err := s.ListPathLabels(ctx, B, store.ListOptions{Filter: map[string]string{"name": "a-label"}})
	must(t, err)
	if labels.Total != 0 {
		t.Fatalf("B's label list shows A's label: %+v", labels)
	}
	all, err := s.ListPathLabels(ctx, B, store.ListOptions{})
	must(t, err)
	same(t, ids(all.Items, labelName), []string{"b-label"}, "B's labels")
	// Account-scoped lists obey the account id in the same way.
	keys, err := s.ListAccessKeys(ctx, b.acct.ID, store.ListOptions{})
	must(t, err)
	grp, err := s.ListGroups(ctx, b.acct.ID, store.ListOptions{})
	must(t, err)
	same(t, ids(grp.Items, groupID), []string{b.group.ID}, "B's groups")
	if keys.Total != 0 {
		t.Fatalf("B lists keys it does not have: %+v", keys)
	}
}
