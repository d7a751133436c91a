package store_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/trellis-sdwan/trellis/manage/store"
	"github.com/trellis-sdwan/trellis/manage/store/storetest"
)

// Run with: go test -run - -bench . ./manage/store/
// (PostgreSQL benchmarks need TRELLIS_TEST_POSTGRES.)

func BenchmarkSQLite(b *testing.B) { benchStore(b, storetest.OpenSQLite) }

func BenchmarkPostgres(b *testing.B) {
	storetest.PostgresDSN(b)
	benchStore(b, storetest.OpenPostgres)
}

func benchStore(b *testing.B, open func(testing.TB) store.Store) {
	setup := func(b *testing.B, devices int) (store.Store, store.Organization, []string) {
		s := open(b)
		ctx := context.Background()
		a := store.Account{Name: "bench"}
		if err := s.CreateAccount(ctx, &a); err != nil {
			b.Fatal(err)
		}
		o := store.Organization{AccountID: a.ID, Name: "bench"}
		if err := s.CreateOrganization(ctx, &o); err != nil {
			b.Fatal(err)
		}
		var ids []string
		err := s.InTx(ctx, func(tx store.Store) error {
			for i := range devices {
				d := benchDevice(o.ID, fmt.Sprintf("seed-%d", i))
				if err := tx.CreateDevice(ctx, &d); err != nil {
					return err
				}
				ids = append(ids, d.ID)
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		return s, o, ids
	}
	b.Run("CreateDevice", func(b *testing.B) {
		s, o, _ := setup(b, 0)
		ctx := context.Background()
		i := 0
		for b.Loop() {
			d := benchDevice(o.ID, fmt.Sprintf("m-%d", i))
			i++
			if err := s.CreateDevice(ctx, &d); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("CreateDeviceParallel", func(b *testing.B) {
		s, o, _ := setup(b, 0)
		ctx := context.Background()
		var n atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				d := benchDevice(o.ID, fmt.Sprintf("p-%d", n.Add(1)))
				if err := s.CreateDevice(ctx, &d); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("GetDevice", func(b *testing.B) {
		s, o, ids := setup(b, 1000)
		ctx := context.Background()
		i := 0
		for b.Loop() {
			if _, err := s.GetDevice(ctx, o.ID, ids[i%len(ids)]); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("ListDevices50of1000", func(b *testing.B) {
		s, o, _ := setup(b, 1000)
		ctx := context.Background()
		for b.Loop() {
			p, err := s.ListDevices(ctx, o.ID, store.ListOptions{Limit: 50, Offset: 500, Sort: "name", Filter: map[string]string{"approval": "pending"}})
			if err != nil || len(p.Items) != 50 || p.Total != 1000 {
				b.Fatalf("%d items of %d: %v", len(p.Items), p.Total, err)
			}
		}
	})
}

func benchDevice(orgID, machine string) store.Device {
	return store.Device{
		OrgID: orgID, MachineID: machine, Name: "edge " + machine, Site: "site", Hostname: machine,
		Versions: map[string]string{"edge": "0.1.0"},
		Interfaces: []store.Interface{
			{Name: "eth0", MAC: "52:54:00:00:00:01", Addresses: []string{"192.0.2.10/24"}, Gateway: "192.0.2.1", LinkUp: true, MTU: 1500},
			{Name: "eth1", MAC: "52:54:00:00:00:02", Addresses: []string{"10.0.0.1/24"}, LinkUp: true},
		},
	}
}
