package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/trellis-sdwan/trellis/manage/store"
)

func testPagination(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := newTenant(t, s, "a")
	var all []string
	for i := range 7 {
		d := store.Device{OrgID: a.org.ID, MachineID: fmt.Sprintf("m%d", i), Name: fmt.Sprintf("dev-%d", i)}
		must(t, s.CreateDevice(ctx, &d))
		all = append(all, d.ID)
	}
	var seen []string
	for off := 0; off < 7; off += 3 {
		page, err := s.ListDevices(ctx, a.org.ID, store.ListOptions{Limit: 3, Offset: off, Sort: "name"})
		must(t, err)
		if page.Total != 7 {
			t.Fatalf("offset %d: total %d, want 7", off, page.Total)
		}
		want := min(3, 7-off)
		if len(page.Items) != want {
			t.Fatalf("offset %d: %d items, want %d", off, len(page.Items), want)
		}
		seen = append(seen, ids(page.Items, deviceID)...)
	}
	same(t, seen, all, "devices paged by name")
	page, err := s.ListDevices(ctx, a.org.ID, store.ListOptions{Offset: 7})
	must(t, err)
	if page.Total != 7 || len(page.Items) != 0 || page.Items == nil {
		t.Fatalf("past the end: %+v (want total 7, empty non-nil items)", page)
	}
	page, err = s.ListDevices(ctx, a.org.ID, store.ListOptions{Limit: 2, Filter: map[string]string{"name": "dev"}})
	must(t, err)
	if page.Total != 7 || len(page.Items) != 2 {
		t.Fatalf("filtered page: total %d, %d items", page.Total, len(page.Items))
	}
	page, err = s.ListDevices(ctx, a.org.ID, store.ListOptions{Limit: 2, Filter: map[string]string{"name": "dev-3"}})
	must(t, err)
	if page.Total != 1 || len(page.Items) != 1 {
		t.Fatalf("total must count the filtered rows: %+v", page)
	}

	// Default limit and the cap, on the audit log (cheap rows).
	must(t, s.InTx(ctx, func(tx store.Store) error {
		for i := range store.MaxListLimit + 1 {
			if err := tx.AppendAudit(ctx, &store.AuditEntry{AccountID: a.acct.ID, Action: fmt.Sprintf("a%d", i)}); err != nil {
				return err
			}
		}
		return nil
	}))
	audit, err := s.ListAudit(ctx, a.acct.ID, store.ListOptions{})
	must(t, err)
	if audit.Total != store.MaxListLimit+1 || len(audit.Items) != store.DefaultListLimit {
		t.Fatalf("default page: total %d, %d items; want %d, %d", audit.Total, len(audit.Items), store.MaxListLimit+1, store.DefaultListLimit)
	}
	audit, err = s.ListAudit(ctx, a.acct.ID, store.ListOptions{Limit: 1 << 30})
	must(t, err)
	if len(audit.Items) != store.MaxListLimit {
		t.Fatalf("capped page has %d items, want %d", len(audit.Items), store.MaxListLimit)
	}
}

func testSorting(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := newTenant(t, s, "a")
	base := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	names := []string{"b", "B", "a", "_x", "Z", "a"}
	var devs []store.Device
	for i, n := range names {
		d := store.Device{OrgID: a.org.ID, MachineID: fmt.Sprintf("m%d", i), Name: n, CreatedAt: base.Add(-time.Duration(i) * time.Hour)}
		if i%2 == 0 {
			seen := base.Add(time.Duration(i) * time.Minute)
			d.LastSeenAt = &seen
		}
		must(t, s.CreateDevice(ctx, &d))
		devs = append(devs, d)
	}
	list := func(opt store.ListOptions) []store.Device {
		t.Helper()
		p, err := s.ListDevices(ctx, a.org.ID, opt)
		must(t, err)
		return p.Items
	}
	// Byte order on both backends; ties broken by id in the same direction.
	byName := slices.Clone(devs)
	slices.SortStableFunc(byName, func(x, y store.Device) int {
		if x.Name != y.Name {
			if x.Name < y.Name {
				return -1
			}
			return 1
		}
		if x.ID < y.ID {
			return -1
		}
		return 1
	})
	same(t, ids(list(store.ListOptions{Sort: "name"}), deviceID), ids(byName, deviceID), "devices by name")
	rev := slices.Clone(byName)
	slices.Reverse(rev)
	same(t, ids(list(store.ListOptions{Sort: "name", Desc: true}), deviceID), ids(rev, deviceID), "devices by name, descending")

	// Default: created_at ascending; Desc alone reverses it.
	oldest := []string{devs[5].ID, devs[4].ID, devs[3].ID, devs[2].ID, devs[1].ID, devs[0].ID}
	same(t, ids(list(store.ListOptions{}), deviceID), oldest, "devices by default order")
	newest := slices.Clone(oldest)
	slices.Reverse(newest)
	same(t, ids(list(store.ListOptions{Desc: true}), deviceID), newest, "devices by default order, descending")

	// NULLs last in both directions.
	seenAsc := ids(list(store.ListOptions{Sort: "last_seen_at"}), deviceID)
	same(t, seenAsc[:3], []string{devs[0].ID, devs[2].ID, devs[4].ID}, "devices by last seen")
	seenDesc := ids(list(store.ListOptions{Sort: "last_seen_at", Desc: true}), deviceID)
	same(t, seenDesc[:3], []string{devs[4].ID, devs[2].ID, devs[0].ID}, "devices by last seen, descending")
}

// testInvalidListOptions checks that every list rejects unknown filters and
// sorts and negative paging, naming what was wrong.
func testInvalidListOptions(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := newTenant(t, s, "a")
	lists := map[string]func(store.ListOptions) error{
		"ListAccounts":      func(o store.ListOptions) error { _, err := s.ListAccounts(ctx, nil, o); return err },
		"ListGroups":        func(o store.ListOptions) error { _, err := s.ListGroups(ctx, a.acct.ID, o); return err },
		"ListOrganizations": func(o store.ListOptions) error { _, err := s.ListOrganizations(ctx, nil, o); return err },
		"ListUsers":         func(o store.ListOptions) error { _, err := s.ListUsers(ctx, nil, o); return err },
		"ListInvitations":   func(o store.ListOptions) error { _, err := s.ListInvitations(ctx, a.acct.ID, o); return err },
		"ListAccessKeys":    func(o store.ListOptions) error { _, err := s.ListAccessKeys(ctx, a.acct.ID, o); return err },
		"ListAudit":         func(o store.ListOptions) error { _, err := s.ListAudit(ctx, a.acct.ID, o); return err },
		"ListDevices":       func(o store.ListOptions) error { _, err := s.ListDevices(ctx, a.org.ID, o); return err },
		"ListOrgTokens":     func(o store.ListOptions) error { _, err := s.ListOrgTokens(ctx, a.org.ID, o); return err },
		"ListPathLabels":    func(o store.ListOptions) error { _, err := s.ListPathLabels(ctx, a.org.ID, o); return err },
	}
	for name, list := range lists {
		must(t, list(store.ListOptions{}))
		wantErrMention(t, list(store.ListOptions{Filter: map[string]string{"password_hash": "x"}}), store.ErrInvalid, "password_hash", name+" unknown filter")
		wantErrMention(t, list(store.ListOptions{Filter: map[string]string{"1=1; DROP TABLE users; --": "x"}}), store.ErrInvalid, "DROP TABLE", name+" hostile filter key")
		wantErrMention(t, list(store.ListOptions{Sort: "secret_hash"}), store.ErrInvalid, "secret_hash", name+" unknown sort")
		wantErrMention(t, list(store.ListOptions{Sort: "name; DROP TABLE users"}), store.ErrInvalid, "sort", name+" hostile sort")
		wantErrMention(t, list(store.ListOptions{Limit: -1}), store.ErrInvalid, "limit", name+" negative limit")
		wantErrMention(t, list(store.ListOptions{Offset: -1}), store.ErrInvalid, "offset", name+" negative offset")
	}
	// Hostile filter values are data, never SQL.
	p, err := s.ListDevices(ctx, a.org.ID, store.ListOptions{Filter: map[string]string{"site": "x' OR '1'='1", "name": "'; DROP TABLE devices; --"}})
	must(t, err)
	if p.Total != 0 {
		t.Fatalf("hostile filter values matched %d devices", p.Total)
	}
	must(t, s.CreateDevice(ctx, &store.Device{OrgID: a.org.ID, MachineID: "still-works"}))
}

var errBoom = errors.New("boom")

func testTransactions(t *testing.T, s store.Store) {
	ctx := t.Context()
	countAccounts := func() int {
		t.Helper()
		p, err := s.ListAccounts(ctx, nil, store.ListOptions{})
		must(t, err)
		return p.Total
	}

	// An error rolls everything back.
	var inside store.Account
	err := s.InTx(ctx, func(tx store.Store) error {
		inside = store.Account{Name: "tx"}
		if err := tx.CreateAccount(ctx, &inside); err != nil {
			return err
		}
		if err := tx.CreateOrganization(ctx, &store.Organization{AccountID: inside.ID, Name: "o"}); err != nil {
			return err
		}
		// Reads inside see the transaction's writes.
		if _, err := tx.GetAccount(ctx, inside.ID); err != nil {
			return err
		}
		p, err := tx.ListOrganizations(ctx, nil, store.ListOptions{})
		if err != nil {
			return err
		}
		if p.Total != 1 {
			return fmt.Errorf("inside the transaction: %d organizations", p.Total)
		}
		return errBoom
	})
	wantErr(t, err, errBoom, "InTx returns fn's error")
	_, err = s.GetAccount(ctx, inside.ID)
	wantErr(t, err, store.ErrNotFound, "account of rolled-back transaction")
	if n := countAccounts(); n != 0 {
		t.Fatalf("%d accounts after rollback", n)
	}

	// Nested InTx reuses the transaction: an outer error undoes the inner work.
	err = s.InTx(ctx, func(tx store.Store) error {
		if err := tx.InTx(ctx, func(tx2 store.Store) error {
			return tx2.CreateAccount(ctx, &store.Account{Name: "inner"})
		}); err != nil {
			return err
		}
		return errBoom
	})
	wantErr(t, err, errBoom, "nested")
	if n := countAccounts(); n != 0 {
		t.Fatalf("%d accounts after nested rollback", n)
	}

	// A failing statement (here a conflict) fails the whole transaction.
	err = s.InTx(ctx, func(tx store.Store) error {
		if err := tx.CreateUser(ctx, &store.User{Email: "once@example.com"}); err != nil {
			return err
		}
		return tx.CreateUser(ctx, &store.User{Email: "ONCE@example.com"})
	})
	wantErr(t, err, store.ErrConflict, "conflict inside transaction")
	_, err = s.GetUserByEmail(ctx, "once@example.com")
	wantErr(t, err, store.ErrNotFound, "user of failed transaction")

	// An error the caller handles does not spoil the transaction (PostgreSQL
	// would abort it; the store must behave the same on both backends).
	must(t, s.CreateUser(ctx, &store.User{Email: "taken@example.com"}))
	var fresh store.User
	must(t, s.InTx(ctx, func(tx store.Store) error {
		err := tx.CreateUser(ctx, &store.User{Email: "taken@example.com"})
		if !errors.Is(err, store.ErrConflict) {
			return fmt.Errorf("want ErrConflict, got %v", err)
		}
		if err := tx.UpdateAccount(ctx, &store.Account{ID: "missing", Name: "x"}); !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("want ErrNotFound, got %v", err)
		}
		if err := tx.CreateOrganization(ctx, &store.Organization{AccountID: "missing", Name: "x"}); !errors.Is(err, store.ErrInvalid) {
			return fmt.Errorf("want ErrInvalid, got %v", err)
		}
		fresh = store.User{Email: "fresh@example.com"}
		return tx.CreateUser(ctx, &fresh)
	}))
	_, err = s.GetUser(ctx, fresh.ID)
	must(t, err)

	// A panic rolls back and propagates; the store stays usable.
	func() {
		defer func() {
			if r := recover(); r != errBoom {
				t.Fatalf("recovered %v, want the panic value", r)
			}
		}()
		_ = s.InTx(ctx, func(tx store.Store) error {
			must(t, tx.CreateAccount(ctx, &store.Account{Name: "panic"}))
			panic(errBoom)
		})
	}()
	if n := countAccounts(); n != 0 {
		t.Fatalf("%d accounts after panic", n)
	}

	// Commit.
	var a store.Account
	must(t, s.InTx(ctx, func(tx store.Store) error {
		a = store.Account{Name: "committed"}
		if err := tx.CreateAccount(ctx, &a); err != nil {
			return err
		}
		return tx.CreateOrganization(ctx, &store.Organization{AccountID: a.ID, Name: "o"})
	}))
	got, err := s.GetAccount(ctx, a.ID)
	must(t, err)
	same(t, got, a, "committed account")
}

func testSettings(t *testing.T, s store.Store) {
	ctx := t.Context()
	_, err := s.GetSetting(ctx, "signing_key")
	wantErr(t, err, store.ErrNotFound, "missing setting")
	must(t, s.SetSetting(ctx, "signing_key", "v1"))
	must(t, s.SetSetting(ctx, "other", ""))
	must(t, s.SetSetting(ctx, "signing_key", "v2"))
	v, err := s.GetSetting(ctx, "signing_key")
	must(t, err)
	if v != "v2" {
		t.Fatalf("setting = %q, want v2", v)
	}
	v, err = s.GetSetting(ctx, "other")
	must(t, err)
	if v != "" {
		t.Fatalf("empty setting = %q", v)
	}
	wantErr(t, s.SetSetting(ctx, "", "x"), store.ErrInvalid, "empty key")
}

func testTimestamps(t *testing.T, s store.Store) {
	ctx := t.Context()
	zone := time.FixedZone("UTC+5", 5*3600)
	at := time.Date(2026, 7, 1, 17, 30, 0, 123456789, zone)
	a := store.Account{Name: "t", CreatedAt: at, UpdatedAt: at}
	must(t, s.CreateAccount(ctx, &a))
	want := time.Date(2026, 7, 1, 12, 30, 0, 123457000, time.UTC)
	if !a.CreatedAt.Equal(want) || a.CreatedAt.Location() != time.UTC {
		t.Fatalf("created_at normalized to %v, want %v", a.CreatedAt, want)
	}
	got, err := s.GetAccount(ctx, a.ID)
	must(t, err)
	if !got.CreatedAt.Equal(want) || got.CreatedAt.Location() != time.UTC || got.CreatedAt.Nanosecond() != 123457000 {
		t.Fatalf("stored created_at %v (%v), want %v UTC", got.CreatedAt, got.CreatedAt.Location(), want)
	}

	// Comparisons work across zones.
	u := newUser(t, s, "t@example.com")
	exp := time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC)
	must(t, s.CreateSession(ctx, &store.Session{IDHash: "z", UserID: u.ID, ExpiresAt: exp.In(zone)}))
	n, err := s.DeleteExpiredSessions(ctx, exp.Add(-time.Microsecond))
	must(t, err)
	if n != 0 {
		t.Fatalf("a session expiring later was removed")
	}
	n, err = s.DeleteExpiredSessions(ctx, exp.In(time.FixedZone("UTC-3", -3*3600)))
	must(t, err)
	if n != 1 {
		t.Fatalf("the expired session was not removed")
	}
}

func testConcurrentWrites(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := newTenant(t, s, "a")
	const workers, each = 8, 15
	var wg sync.WaitGroup
	errs := make(chan error, workers*each*2)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				d := store.Device{OrgID: a.org.ID, MachineID: fmt.Sprintf("w%d-%d", w, i)}
				if err := s.CreateDevice(ctx, &d); err != nil {
					errs <- err
					continue
				}
				// A read-modify-write transaction next to plain writes.
				if err := s.InTx(ctx, func(tx store.Store) error {
					got, err := tx.GetDevice(ctx, a.org.ID, d.ID)
					if err != nil {
						return err
					}
					got.Name = "renamed"
					return tx.UpdateDevice(ctx, &got)
				}); err != nil {
					errs <- err
				}
				if _, err := s.ListDevices(ctx, a.org.ID, store.ListOptions{Limit: 5}); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent write: %v", err)
	}
	p, err := s.ListDevices(ctx, a.org.ID, store.ListOptions{Filter: map[string]string{"name": "renamed"}})
	must(t, err)
	if p.Total != workers*each {
		t.Fatalf("%d devices renamed, want %d", p.Total, workers*each)
	}

	// A recovery code is single use even under concurrent attempts.
	u := newUser(t, s, "c@example.com")
	must(t, s.ReplaceRecoveryCodes(ctx, u.ID, []string{"only"}))
	results := make(chan error, workers)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results <- s.UseRecoveryCode(ctx, u.ID, "only", time.Now())
		}()
	}
	wg.Wait()
	close(results)
	ok := 0
	for err := range results {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, store.ErrNotFound):
			t.Errorf("concurrent use: %v", err)
		}
	}
	if ok != 1 {
		t.Fatalf("code accepted %d times, want once", ok)
	}
}

// testContext: a cancelled context stops work with context.Canceled and
// writes nothing; a transaction's store cannot be closed.
func testContext(t *testing.T, s store.Store) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	wantErr(t, s.CreateAccount(ctx, &store.Account{Name: "never"}), context.Canceled, "create with a cancelled context")
	_, err := s.ListAccounts(ctx, nil, store.ListOptions{})
	wantErr(t, err, context.Canceled, "list with a cancelled context")
	err = s.InTx(ctx, func(tx store.Store) error {
		return tx.CreateAccount(ctx, &store.Account{Name: "never"})
	})
	wantErr(t, err, context.Canceled, "transaction with a cancelled context")

	// Cancelled in the middle of a transaction: rolled back.
	ctx2, cancel2 := context.WithCancel(t.Context())
	err = s.InTx(ctx2, func(tx store.Store) error {
		if err := tx.CreateAccount(ctx2, &store.Account{Name: "half"}); err != nil {
			return err
		}
		cancel2()
		return tx.CreateAccount(ctx2, &store.Account{Name: "other half"})
	})
	wantErr(t, err, context.Canceled, "transaction cancelled midway")

	p, err := s.ListAccounts(t.Context(), nil, store.ListOptions{})
	must(t, err)
	if p.Total != 0 {
		t.Fatalf("%d accounts written under cancelled contexts", p.Total)
	}
	must(t, s.InTx(t.Context(), func(tx store.Store) error {
		if tx.Close() == nil {
			return errors.New("Close inside a transaction succeeded")
		}
		return nil
	}))
	// Still usable.
	must(t, s.CreateAccount(t.Context(), &store.Account{Name: "after"}))
}

// testErrorFields: ErrInvalid errors carry the field (store.FieldError) and
// ErrConflict errors the unique field that clashed (store.ConflictError),
// identically on every backend.
func testErrorFields(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := newTenant(t, s, "a")
	u := newUser(t, s, "f@example.com")
	must(t, s.CreateDevice(ctx, &store.Device{OrgID: a.org.ID, MachineID: "m", CredentialHash: "c"}))
	must(t, s.CreatePathLabel(ctx, &store.PathLabel{OrgID: a.org.ID, Name: "MPLS", Type: store.LabelTunnel}))
	must(t, s.CreateAccessKey(ctx, &store.AccessKey{UserID: u.ID, AccountID: a.acct.ID, Scope: store.ScopeAccount, Role: store.RoleViewer, Prefix: "p", SecretHash: "h"}))
	must(t, s.CreateOrgToken(ctx, &store.OrgToken{OrgID: a.org.ID, TokenHash: "t"}))

	conflicts := []struct {
		err   error
		field string
	}{
		{s.CreateUser(ctx, &store.User{Email: "F@example.com"}), "email"},
		{s.CreateDevice(ctx, &store.Device{OrgID: a.org.ID, MachineID: "m"}), "machine_id"},
		{s.CreateDevice(ctx, &store.Device{OrgID: a.org.ID, MachineID: "m2", CredentialHash: "c"}), "credential_hash"},
		{s.CreatePathLabel(ctx, &store.PathLabel{OrgID: a.org.ID, Name: "MPLS", Type: store.LabelDIA}), "name"},
		{s.CreateAccessKey(ctx, &store.AccessKey{UserID: u.ID, AccountID: a.acct.ID, Scope: store.ScopeAccount, Role: store.RoleViewer, Prefix: "p", SecretHash: "h"}), "prefix"},
		{s.CreateOrgToken(ctx, &store.OrgToken{OrgID: a.org.ID, TokenHash: "t"}), "token_hash"},
		{s.CreateAccount(ctx, &store.Account{ID: a.acct.ID, Name: "x"}), "id"},
	}
	for _, c := range conflicts {
		var ce *store.ConflictError
		if !errors.As(c.err, &ce) || !errors.Is(c.err, store.ErrConflict) || ce.Field != c.field {
			t.Errorf("conflict on %s: got %v (%#v)", c.field, c.err, ce)
		}
	}

	invalids := []struct {
		err   error
		field string
	}{
		{s.CreateOrganization(ctx, &store.Organization{AccountID: a.acct.ID, Name: "x", TunnelRange: "nope"}), "tunnel_range"},
		{s.CreatePathLabel(ctx, &store.PathLabel{OrgID: a.org.ID, Name: "x", Type: "vpn"}), "type"},
		{s.CreateUser(ctx, &store.User{Email: "bad"}), "email"},
		{s.CreateMembership(ctx, &store.Membership{UserID: u.ID, AccountID: a.acct.ID, Scope: store.ScopeOrganization, ScopeID: "missing", Role: store.RoleViewer}), "scope_id"},
		{func() error { _, err := s.ListDevices(ctx, a.org.ID, store.ListOptions{Sort: "nope"}); return err }(), "sort"},
		{func() error {
			_, err := s.ListDevices(ctx, a.org.ID, store.ListOptions{Filter: map[string]string{"nope": "1"}})
			return err
		}(), "nope"},
	}
	for _, c := range invalids {
		var fe *store.FieldError
		if !errors.As(c.err, &fe) || !errors.Is(c.err, store.ErrInvalid) || fe.Field != c.field || fe.Message == "" {
			t.Errorf("invalid %s: got %v (%#v)", c.field, c.err, fe)
		}
	}
}
