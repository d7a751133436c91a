package ctl

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/trellis-sdwan/trellis/manage/auth"
	"github.com/trellis-sdwan/trellis/manage/server"
	"github.com/trellis-sdwan/trellis/manage/store"
	"github.com/trellis-sdwan/trellis/manage/store/storetest"
)

// manage is a running controller for the end-to-end tests.
type manage struct {
	url, fingerprint string
	email, password  string
	store            store.Store
}

// startManage runs the real controller (manage/server) in-process on a
// temporary data directory with SQLite, serving HTTPS with its own
// self-signed certificate on a free loopback port. On first start it creates
// the admin, the "Default" account, group and organization. plainHTTP
// serves http:// instead.
func startManage(t *testing.T) *manage { return startManageWith(t, false, "") }

// startManageWith can serve plain HTTP instead of HTTPS and use another
// database (a PostgreSQL DSN) instead of the SQLite default.
func startManageWith(t *testing.T, plainHTTP bool, db string) *manage {
	t.Helper()
	m := &manage{email: "admin@example.net", password: "first admin password"}
	cfg := server.Config{
		DataDir:        t.TempDir(),
		Listen:         "127.0.0.1:0",
		AdminEmail:     m.email,
		AdminPassword:  m.password,
		Logger:         slog.New(slog.DiscardHandler),
		Out:            io.Discard,
		PasswordParams: auth.TestPasswordParams,
		DB:             db,
		InternetCheck:  server.InternetCheckConfig{Off: true}, // nothing a test starts pings outside it
	}
	if plainHTTP {
		cfg.Listen, cfg.HTTPListen = "", "127.0.0.1:0"
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := server.New(ctx, cfg)
	if err != nil {
		cancel()
		t.Fatalf("starting trellis-manage: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("trellis-manage stopped with: %v", err)
		}
	})
	if plainHTTP {
		m.url = "http://" + srv.HTTPAddr()
	} else {
		m.url = "https://" + srv.Addr()
		m.fingerprint = srv.Fingerprint()
	}
	m.store = srv.Store()
	return m
}

// admin is a trellisctl environment logged in to m as its first admin
// (the certificate pinned by its fingerprint).
func (m *manage) admin(t *testing.T) *env {
	t.Helper()
	e := newEnv(t)
	e.must(m.password+"\n", "login", "--server", m.url, "--fingerprint", m.fingerprint, m.email)
	return e
}

// addDevice puts d straight into m's store (as a registration would) and
// returns it with its id.
func (m *manage) addDevice(t *testing.T, d store.Device) store.Device {
	t.Helper()
	if err := m.store.CreateDevice(t.Context(), &d); err != nil {
		t.Fatal(err)
	}
	return d
}

// approvedDevice puts an approved device named name into org.
func (m *manage) approvedDevice(t *testing.T, org, machineID, name string) store.Device {
	t.Helper()
	return m.addDevice(t, store.Device{OrgID: org, MachineID: machineID, Name: name, Approval: store.ApprovalApproved})
}

// insertPoints puts metric history straight into m's store (as the
// monitor would).
func (m *manage) insertPoints(t *testing.T, pts []store.MetricPoint) {
	t.Helper()
	if err := m.store.InsertMetricPoints(t.Context(), pts); err != nil {
		t.Fatal(err)
	}
}

// onBothStores runs body against a controller on SQLite (subtest
// "sqlite") and one on PostgreSQL ("postgres", skipped without one).
func onBothStores(t *testing.T, body func(*testing.T, *manage)) {
	t.Run("sqlite", func(t *testing.T) { body(t, startManage(t)) })
	t.Run("postgres", func(t *testing.T) { body(t, startManageWith(t, false, storetest.NewPostgresDSN(t))) })
}
