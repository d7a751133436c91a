package client

import (
	"context"
	"crypto/x509"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestTLSVerification(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"user":{"id":"u1","email":"a@b.c"},"memberships":[],"auth":{"type":"session"}}`)
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are expected
	srv.StartTLS()
	defer srv.Close()
	fp := CertFingerprint(srv.Certificate())
	wrong := strings.Repeat("ab", 32)

	tests := []struct {
		name    string
		opts    Options
		check   func(error) bool
		wantErr string
	}{
		{name: "pinned", opts: Options{Fingerprint: fp}},
		{name: "pinned, colon form", opts: Options{Fingerprint: FormatFingerprint(fp)}},
		{name: "insecure", opts: Options{Insecure: true}},
		{
			name: "wrong pin", opts: Options{Fingerprint: wrong},
			check: func(err error) bool {
				var fe *FingerprintError
				return errors.As(err, &fe) && fe.Got == fp && fe.Want == wrong
			},
			wantErr: "does not match the pinned",
		},
		{
			name: "system CAs refuse a self-signed certificate", opts: Options{},
			check: func(err error) bool {
				var ua x509.UnknownAuthorityError
				return errors.As(err, &ua)
			},
		},
		{
			name: "malformed pin", opts: Options{Fingerprint: "zz"},
			wantErr: "64 hex digits",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.BaseURL = srv.URL
			c, err := New(tt.opts)
			if err == nil {
				var me *Me
				me, err = c.Me(context.Background())
				if err == nil && me.User.Email != "a@b.c" {
					t.Errorf("Me = %+v", me)
				}
			}
			wantFail := tt.check != nil || tt.wantErr != ""
			if !wantFail {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("connection succeeded, want a failure")
			}
			if tt.check != nil && !tt.check(err) {
				t.Errorf("error %v (%T) is not the expected kind", err, err)
			}
			if tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q does not contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestFetchFingerprint(t *testing.T) {
	srv := httptest.NewTLSServer(http.NotFoundHandler())
	defer srv.Close()
	got, err := FetchFingerprint(context.Background(), srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	if want := CertFingerprint(srv.Certificate()); got != want {
		t.Errorf("FetchFingerprint = %s, want %s", got, want)
	}
	if _, err := FetchFingerprint(context.Background(), "http://127.0.0.1:1"); err == nil {
		t.Error("FetchFingerprint of an http URL: no error")
	}
}
