package lab

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/trellis-sdwan/trellis/client"
)

func TestInSyncAndMissing(t *testing.T) {
	good := client.Device{MachineID: "s1", Approval: "approved", ConnState: "connected", SyncStatus: "in-sync", DesiredVersion: "ab", AppliedVersion: "ab"}
	tests := []struct {
		name    string
		ds      []client.Device
		wantErr []string // substrings; none means no error
	}{
		{"all in sync", []client.Device{good, func() client.Device { d := good; d.MachineID = "s2"; return d }()}, nil},
		{"one missing", []client.Device{good}, []string{"not registered: s2"}},
		{"pending", []client.Device{good, {MachineID: "s2", Approval: "pending", ConnState: "disconnected"}}, []string{"s2: approval pending"}},
		{"behind", []client.Device{good, {MachineID: "s2", Approval: "approved", ConnState: "connected", SyncStatus: "pending", DesiredVersion: "cd", AppliedVersion: "ab"}}, []string{"s2:", "desired cd, applied ab"}},
		{"no version yet", []client.Device{good, {MachineID: "s2", Approval: "approved", ConnState: "connected", SyncStatus: "in-sync"}}, []string{"s2:"}},
		{"other devices ignored", []client.Device{good, {MachineID: "elsewhere"}, func() client.Device { d := good; d.MachineID = "s2"; return d }()}, nil},
		{"none", nil, []string{"not registered: s1, s2"}},
	}
	want := map[string]bool{"s1": true, "s2": true}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := missing(tc.ds, want, InSync)
			if len(tc.wantErr) == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want %q", tc.wantErr)
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestPoll(t *testing.T) {
	ctx := context.Background()
	n := 0
	if err := poll(ctx, time.Minute, func() error {
		n++
		if n < 3 {
			return errors.New("not yet")
		}
		return nil
	}); err != nil || n != 3 {
		t.Errorf("poll = %v after %d calls, want nil after 3", err, n)
	}
	n = 0
	err := poll(ctx, time.Minute, func() error { n++; return permanent{ErrProcessExited} })
	if !errors.Is(err, ErrProcessExited) || n != 1 {
		t.Errorf("permanent error: %v after %d calls, want ErrProcessExited after 1", err, n)
	}
	err = poll(ctx, 30*time.Millisecond, func() error { return errors.New("never") })
	if err == nil || err.Error() != "never" {
		t.Errorf("timeout: %v, want the last error", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := poll(cctx, time.Minute, func() error { return errors.New("never") }); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

func TestCertFingerprint(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "t"}, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("cert.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	fp, err := certFingerprint(good)
	if err != nil || fp != client.CertFingerprint(cert) {
		t.Errorf("fingerprint %q, %v; want %q", fp, err, client.CertFingerprint(cert))
	}
	for name, data := range map[string][]byte{
		"empty.pem":   nil,
		"key.pem":     pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1}}),
		"garbage.pem": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("no")}),
	} {
		if _, err := certFingerprint(write(name, data)); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
	if _, err := certFingerprint(filepath.Join(dir, "absent.pem")); err == nil {
		t.Error("missing file accepted")
	}
}

func TestModuleRootAndLogTail(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	root, err := ModuleRoot(wd)
	if err != nil || root != filepath.Dir(wd) {
		t.Errorf("ModuleRoot(%s) = %q, %v; want %q", wd, root, err, filepath.Dir(wd))
	}
	other := t.TempDir()
	if err := os.WriteFile(filepath.Join(other, "go.mod"), []byte("module example.com/x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ModuleRoot(filepath.Join(other)); err == nil {
		t.Error("a foreign module accepted")
	}

	log := filepath.Join(t.TempDir(), "x.log")
	if err := os.WriteFile(log, []byte("1\n2\n3\n4\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for n, want := range map[int]string{2: "3\n4", 10: "1\n2\n3\n4"} {
		if got := logTail(log, n); got != want {
			t.Errorf("logTail(%d) = %q, want %q", n, got, want)
		}
	}
	if got := logTail(log+".absent", 3); !strings.Contains(got, "no log") {
		t.Errorf("logTail of a missing file = %q", got)
	}
}

func TestManageInfoRoundTrip(t *testing.T) {
	l := &Lab{State: &State{Dir: t.TempDir()}}
	if _, err := l.LoadManageInfo(); !errors.Is(err, ErrNoManage) {
		t.Fatalf("no manage: %v, want ErrNoManage", err)
	}
	if err := os.MkdirAll(l.State.NodeDir("manage"), 0o755); err != nil {
		t.Fatal(err)
	}
	in := &ManageInfo{URL: "https://100.64.0.2:8443", Email: "a@b", Password: "secret secret", Fingerprint: strings.Repeat("ab", 32), OrgID: "o", BinDir: "/bin"}
	if err := l.saveManageInfo(in); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(l.State.NodeDir("manage"), manageInfoFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("details file: %v, mode %v; want 0600", err, fi.Mode())
	}
	out, err := l.LoadManageInfo()
	if err != nil || *out != *in {
		t.Errorf("round trip: %+v, %v; want %+v", out, err, in)
	}
}

// StartTrellis refuses what it cannot run before starting anything.
func TestStartTrellisRefuses(t *testing.T) {
	tests := []struct {
		name    string
		run     []Process
		bin     bool
		wantErr string
	}{
		{"run entry named trellis-edge", []Process{{Name: EdgeProc, Argv: []string{"x"}}}, true, "clashes"},
		{"run entry named forward", []Process{{Name: ForwardProc, Argv: []string{"x"}}}, true, "clashes"},
		{"no binaries", nil, false, "not found"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			top := Topology{Sites: []Site{{Run: tc.run}}}
			if err := top.Normalize(); err != nil {
				t.Fatal(err)
			}
			plan, err := NewPlan("tx", top)
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			bin := t.TempDir()
			if tc.bin {
				for _, n := range []string{ManageProc, EdgeProc} {
					if err := os.WriteFile(filepath.Join(bin, n), []byte("#!/bin/sh\n"), 0o755); err != nil {
						t.Fatal(err)
					}
				}
			}
			l := &Lab{Plan: plan, State: &State{Prefix: "tx", Dir: dir}}
			_, err = l.StartTrellis(context.Background(), TrellisOptions{BinDir: bin})
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want %q", err, tc.wantErr)
			}
			if len(l.State.Processes) != 0 {
				t.Errorf("started %v", l.State.Processes)
			}
		})
	}
}
