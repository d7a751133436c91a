package ctl

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/trellis-sdwan/trellis/client"
	"github.com/trellis-sdwan/trellis/manage/api"
	"github.com/trellis-sdwan/trellis/manage/auth"
	"github.com/trellis-sdwan/trellis/manage/store"
)

// manage is a running controller for the end-to-end tests.
type manage struct {
	url, fingerprint string
	email, password  string
	store            store.Store
}

// startManage runs the controller's REST API on a temporary SQLite
// database behind HTTPS, with a first admin who owns the first account.
func startManage(t *testing.T) *manage {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "manage.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })

	var handler http.Handler
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { handler.ServeHTTP(w, r) }))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	fp := client.CertFingerprint(srv.Certificate())

	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	key := make([]byte, 32)
	rand.Read(key)
	sealer, err := auth.NewSealer(key)
	if err != nil {
		t.Fatal(err)
	}
	a, err := api.New(api.Config{Store: st, PublicURL: srv.URL, CertFingerprint: fp, SigningKey: priv,
		Sealer: sealer, PasswordParams: auth.TestPasswordParams})
	if err != nil {
		t.Fatal(err)
	}
	handler = a.Handler()

	m := &manage{url: srv.URL, fingerprint: fp, email: "admin@example.net", password: "first admin password", store: st}
	acc := store.Account{Name: "Acme"}
	if err := st.CreateAccount(ctx, &acc); err != nil {
		t.Fatal(err)
	}
	hash, err := auth.HashPassword(m.password, auth.TestPasswordParams)
	if err != nil {
		t.Fatal(err)
	}
	u := store.User{Email: m.email, Name: "Admin", PasswordHash: hash}
	if err := st.CreateUser(ctx, &u); err != nil {
		t.Fatal(err)
	}
	ms := store.Membership{UserID: u.ID, AccountID: acc.ID, Scope: store.ScopeAccount, ScopeID: acc.ID, Role: store.RoleOwner}
	if err := st.CreateMembership(ctx, &ms); err != nil {
		t.Fatal(err)
	}
	return m
}
