package store

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
)

func TestParseMigrations(t *testing.T) {
	file := func(s string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(s)} }
	tests := []struct {
		name    string
		files   fstest.MapFS
		backend string
		want    []string // SQL per version
		err     string
	}{
		{
			name:    "common files",
			files:   fstest.MapFS{"m/0001_init.sql": file("A"), "m/0002_more.sql": file("B"), "m/README": file("x")},
			backend: BackendSQLite, want: []string{"A", "B"},
		},
		{
			name: "dialect variant wins over the common file",
			files: fstest.MapFS{
				"m/0001_init.sql": file("common"), "m/0001_init.postgres.sql": file("pg"),
				"m/0002_x.sqlite.sql": file("lite2"), "m/0002_x.postgres.sql": file("pg2"),
			},
			backend: BackendPostgres, want: []string{"pg", "pg2"},
		},
		{
			name: "other dialect's variant is ignored",
			files: fstest.MapFS{
				"m/0001_init.sql": file("common"), "m/0001_init.postgres.sql": file("pg"),
			},
			backend: BackendSQLite, want: []string{"common"},
		},
		{
			name:    "gap",
			files:   fstest.MapFS{"m/0001_a.sql": file("A"), "m/0003_c.sql": file("C")},
			backend: BackendSQLite, err: "version 2 is missing",
		},
		{
			name:    "no variant for this backend",
			files:   fstest.MapFS{"m/0001_a.sql": file("A"), "m/0002_b.postgres.sql": file("B")},
			backend: BackendSQLite, err: "no SQL for sqlite",
		},
		{
			name:    "bad file name",
			files:   fstest.MapFS{"m/init.sql": file("A")},
			backend: BackendSQLite, err: "want NNNN_name.sql",
		},
		{
			name:    "two names for one version",
			files:   fstest.MapFS{"m/0001_a.sql": file("A"), "m/0001_b.postgres.sql": file("B")},
			backend: BackendSQLite, err: "two names",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ms, err := parseMigrations(tc.files, "m", tc.backend)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for i, m := range ms {
				if m.version != i+1 {
					t.Fatalf("migration %d has version %d", i, m.version)
				}
				got = append(got, m.sql)
			}
			if strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// The embedded migrations exist for both backends with the same versions
// and names.
func TestEmbeddedMigrations(t *testing.T) {
	lite, err := loadMigrations(BackendSQLite)
	if err != nil {
		t.Fatal(err)
	}
	pg, err := loadMigrations(BackendPostgres)
	if err != nil {
		t.Fatal(err)
	}
	if len(lite) == 0 || len(lite) != len(pg) {
		t.Fatalf("%d sqlite and %d postgres migrations", len(lite), len(pg))
	}
	for i := range lite {
		if lite[i].name != pg[i].name {
			t.Fatalf("migration %d: %q vs %q", i+1, lite[i].name, pg[i].name)
		}
	}
	if LatestSchemaVersion() != len(lite) {
		t.Fatalf("LatestSchemaVersion %d, want %d", LatestSchemaVersion(), len(lite))
	}
}

// A new migration applies on top of an existing database; a failing one
// leaves nothing behind (the whole run is one transaction).
func TestApplyMigrationsUpgradeAndRollback(t *testing.T) {
	ctx := context.Background()
	st, err := Open(ctx, filepath.Join(t.TempDir(), "m.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	s := st.(*sqlStore)
	base, err := loadMigrations(BackendSQLite)
	if err != nil {
		t.Fatal(err)
	}
	n := len(base)

	bad := append(append([]migration(nil), base...),
		migration{version: n + 1, name: "good", sql: "CREATE TABLE extra_one (x INTEGER);"},
		migration{version: n + 2, name: "bad", sql: "CREATE TABLE extra_two (x INTEGER); INSERT INTO no_such_table VALUES (1);"})
	err = s.applyMigrations(ctx, bad)
	if err == nil || !strings.Contains(err.Error(), "bad") {
		t.Fatalf("failing migration: err = %v", err)
	}
	if v, _ := s.SchemaVersion(ctx); v != n {
		t.Fatalf("after a failed run the version is %d, want %d", v, n)
	}
	var cnt int
	if err := s.queryRow(ctx, "SELECT COUNT(*) FROM sqlite_master WHERE name IN ('extra_one', 'extra_two')").Scan(&cnt); err != nil {
		t.Fatal(err)
	}
	if cnt != 0 {
		t.Fatalf("%d tables of the failed run remain", cnt)
	}

	good := append(append([]migration(nil), base...),
		migration{version: n + 1, name: "good", sql: "CREATE TABLE extra_one (x INTEGER); INSERT INTO extra_one VALUES (7);"})
	if err := s.applyMigrations(ctx, good); err != nil {
		t.Fatal(err)
	}
	if err := s.applyMigrations(ctx, good); err != nil { // idempotent
		t.Fatal(err)
	}
	if v, _ := s.SchemaVersion(ctx); v != n+1 {
		t.Fatalf("version %d, want %d", v, n+1)
	}
	if err := s.queryRow(ctx, "SELECT COUNT(*) FROM extra_one").Scan(&cnt); err != nil || cnt != 1 {
		t.Fatalf("migration ran %d times (err %v), want once", cnt, err)
	}
	// The binary without migration n+1 now refuses the database.
	err = s.applyMigrations(ctx, base)
	if !errors.Is(err, ErrSchemaTooNew) {
		t.Fatalf("older migration set: err = %v, want ErrSchemaTooNew", err)
	}
}

// Migration 0003 on a database with devices: they get an empty interface
// configuration, and the new tables work.
func TestMigration0003KeepsDevices(t *testing.T) {
	ctx := context.Background()
	s, err := openSQLite(ctx, filepath.Join(t.TempDir(), "m.db"), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	all, err := loadMigrations(BackendSQLite)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) < 3 || all[2].name != "network" {
		t.Fatalf("migration 3 is %+v", all[2])
	}
	if err := s.applyMigrations(ctx, all[:2]); err != nil {
		t.Fatal(err)
	}
	a := Account{Name: "a"}
	if err := s.CreateAccount(ctx, &a); err != nil {
		t.Fatal(err)
	}
	o := Organization{AccountID: a.ID, Name: "o"}
	if err := s.CreateOrganization(ctx, &o); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"d1", "d2"} {
		if _, err := s.exec(ctx, `INSERT INTO devices (id, org_id, machine_id, approval, conn_state, sync_status, interfaces, created_at, updated_at)
			VALUES (?, ?, ?, 'approved', 'disconnected', 'pending', '[{"name":"eth0","mac":"","addresses":[],"link_up":true}]', ?, ?)`,
			id, o.ID, "m-"+id, s.d.ts(now()), s.d.ts(now())); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.applyMigrations(ctx, all); err != nil {
		t.Fatal(err)
	}
	d, err := s.GetDevice(ctx, o.ID, "d1")
	if err != nil {
		t.Fatal(err)
	}
	if d.InterfaceConfig == nil || len(d.InterfaceConfig) != 0 || len(d.Interfaces) != 1 || d.Interfaces[0].Name != "eth0" {
		t.Fatalf("device after migration: %+v", d)
	}
	tun := Tunnel{OrgID: o.ID, Number: 1, DeviceA: "d1", InterfaceA: "eth0", DeviceB: "d2", InterfaceB: "eth0", Transform: "aes128gcm16"}
	if err := s.CreateTunnel(ctx, &tun); err != nil {
		t.Fatal(err)
	}
	r := StaticRoute{OrgID: o.ID, DeviceID: "d1", Destination: "10.0.0.0/8", Gateway: "192.0.2.1"}
	if err := s.CreateStaticRoute(ctx, &r); err != nil {
		t.Fatal(err)
	}
}
