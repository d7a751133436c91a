package store_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/trellis-sdwan/trellis/manage/store"
	"github.com/trellis-sdwan/trellis/manage/store/storetest"
)

// TestBackendsAgree loads the same random inventory into SQLite and
// PostgreSQL and checks that hundreds of random list requests (every sort
// key, both directions, filter combinations, paging) answer identically:
// same items in the same order, same totals.
func TestBackendsAgree(t *testing.T) {
	t.Parallel()
	storetest.PostgresDSN(t)
	ctx := context.Background()
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 42))

	backends := []store.Store{storetest.OpenSQLite(t), storetest.OpenPostgres(t)}
	acct := store.Account{ID: "acct", Name: "a"}
	org := store.Organization{ID: "org", AccountID: "acct", Name: "o"}
	other := store.Organization{ID: "other", AccountID: "acct", Name: "other"}
	words := []string{"edge", "Edge", "EDGE", "paris", "Paris", "_x", "a%b", "École", "zürich", "b", "B", "10", "9", ""}
	pick := func(xs []string) string { return xs[rng.IntN(len(xs))] }
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

	var devices []store.Device
	for i := range 120 {
		d := store.Device{
			ID: fmt.Sprintf("dev-%03d", rng.IntN(1000)*1000+i), OrgID: org.ID, MachineID: fmt.Sprintf("m-%d", i),
			Name: pick(words) + " " + pick(words), Site: pick([]string{"paris", "lyon", "", "Paris"}),
			Hostname: pick(words), Approval: pick([]string{store.ApprovalPending, store.ApprovalApproved}),
			ConnState:  pick([]string{store.ConnConnected, store.ConnDisconnected}),
			SyncStatus: pick([]string{store.SyncInSync, store.SyncPending, store.SyncFailed}),
			// Few distinct times, so sorts must break ties by id.
			CreatedAt: base.Add(time.Duration(rng.IntN(5)) * time.Hour),
		}
		d.UpdatedAt = d.CreatedAt
		if rng.IntN(3) > 0 {
			seen := base.Add(time.Duration(rng.IntN(4)) * time.Minute)
			d.LastSeenAt = &seen
		}
		if i%10 == 0 {
			d.OrgID = other.ID
		}
		devices = append(devices, d)
	}
	for _, s := range backends {
		a, o, o2 := acct, org, other
		if err := s.CreateAccount(ctx, &a); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateOrganization(ctx, &o); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateOrganization(ctx, &o2); err != nil {
			t.Fatal(err)
		}
		err := s.InTx(ctx, func(tx store.Store) error {
			for _, d := range devices {
				if err := tx.CreateDevice(ctx, &d); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}

	sorts, filters, _ := store.ListFields("devices")
	values := map[string][]string{
		"approval":    {store.ApprovalPending, store.ApprovalApproved},
		"conn_state":  {store.ConnConnected, store.ConnDisconnected},
		"sync_status": {store.SyncInSync, store.SyncPending, store.SyncFailed},
		"site":        {"paris", "Paris", "lyon", ""},
		"name":        {"edge", "EDGE", "%", "_", "a%b", "cole", "10", " "},
		"machine_id":  {"m-1", "m-2", "nope"},
	}
	for i := range 400 {
		opt := store.ListOptions{Sort: pick(append(sorts, "")), Desc: rng.IntN(2) == 0, Limit: rng.IntN(40), Offset: rng.IntN(60)}
		for _, f := range filters {
			if rng.IntN(4) == 0 {
				if opt.Filter == nil {
					opt.Filter = map[string]string{}
				}
				opt.Filter[f] = pick(values[f])
			}
		}
		var pages []store.Page[store.Device]
		for _, s := range backends {
			p, err := s.ListDevices(ctx, org.ID, opt)
			if err != nil {
				t.Fatalf("%s %+v: %v", s.Backend(), opt, err)
			}
			pages = append(pages, p)
		}
		if d := cmp.Diff(pages[0], pages[1]); d != "" {
			t.Fatalf("request %d %+v: sqlite and postgres disagree (-sqlite +postgres):\n%s", i, opt, d)
		}
		for _, d := range pages[0].Items {
			if d.OrgID != org.ID {
				t.Fatalf("list of %s shows a device of %s", org.ID, d.OrgID)
			}
		}
		if opt.Filter == nil && opt.Offset == 0 && opt.Limit >= 1 && opt.Sort == "machine_id" && !opt.Desc {
			want := slices.Clone(pages[0].Items)
			slices.SortFunc(want, func(a, b store.Device) int {
				if a.MachineID < b.MachineID {
					return -1
				}
				return 1
			})
			if d := cmp.Diff(want, pages[0].Items); d != "" {
				t.Fatalf("machine_id order is not byte order:\n%s", d)
			}
		}
	}
}
