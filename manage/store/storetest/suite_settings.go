package storetest

import (
	"errors"
	"testing"

	"github.com/trellis-sdwan/trellis/manage/store"
)

// testInternetCheck: an organization's own Internet check settings are
// absent until set, replaced by a second set, kept per organization,
// removed by delete (twice: ErrNotFound) and with the organization.
func testInternetCheck(t *testing.T, s store.Store) {
	ctx := t.Context()
	a, b := newTenant(t, s, "ic-a"), newTenant(t, s, "ic-b")
	_, err := s.GetInternetCheck(ctx, a.org.ID)
	wantErr(t, err, store.ErrNotFound, "settings never set")

	c := store.InternetCheckSetting{OrgID: a.org.ID, Targets: []string{"192.0.2.1", "198.51.100.7"}, IntervalSeconds: 10, TimeoutMillis: 1000, FailRounds: 3}
	must(t, s.SetInternetCheck(ctx, &c))
	if c.UpdatedAt.IsZero() {
		t.Fatal("UpdatedAt not set")
	}
	got, err := s.GetInternetCheck(ctx, a.org.ID)
	must(t, err)
	same(t, got, c, "stored settings")

	off := store.InternetCheckSetting{OrgID: a.org.ID, Targets: nil, IntervalSeconds: 30, TimeoutMillis: 500, FailRounds: 1}
	must(t, s.SetInternetCheck(ctx, &off))
	got, err = s.GetInternetCheck(ctx, a.org.ID)
	must(t, err)
	if got.Targets == nil || len(got.Targets) != 0 || got.IntervalSeconds != 30 || got.FailRounds != 1 {
		t.Fatalf("replaced settings: %+v", got)
	}
	_, err = s.GetInternetCheck(ctx, b.org.ID)
	wantErr(t, err, store.ErrNotFound, "another organization's settings")

	wantErr(t, s.SetInternetCheck(ctx, &store.InternetCheckSetting{OrgID: "no-such-org", Targets: []string{}}), store.ErrNotFound, "unknown organization")
	wantField(t, s.SetInternetCheck(ctx, &store.InternetCheckSetting{OrgID: a.org.ID, IntervalSeconds: -1}), "interval_s", "negative interval")
	if err := s.SetInternetCheck(ctx, &store.InternetCheckSetting{}); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("empty org id: %v", err)
	}

	must(t, s.DeleteInternetCheck(ctx, a.org.ID))
	wantErr(t, s.DeleteInternetCheck(ctx, a.org.ID), store.ErrNotFound, "deleting twice")
	_, err = s.GetInternetCheck(ctx, a.org.ID)
	wantErr(t, err, store.ErrNotFound, "deleted settings")

	c2 := store.InternetCheckSetting{OrgID: b.org.ID, Targets: []string{"192.0.2.9"}, IntervalSeconds: 5, TimeoutMillis: 200, FailRounds: 2}
	must(t, s.SetInternetCheck(ctx, &c2))
	must(t, s.DeleteOrganization(ctx, b.org.ID))
	_, err = s.GetInternetCheck(ctx, b.org.ID)
	wantErr(t, err, store.ErrNotFound, "settings of a deleted organization")
}
