package tlscert

import (
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"testing"
)

func TestLoadOrCreate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	c, fp, created, err := LoadOrCreate(dir, []string{"manage.example", "localhost", "127.0.0.1", "localhost", "[::1]"})
	if err != nil || !created {
		t.Fatalf("create: %v %v", created, err)
	}
	if fp != Fingerprint(c.Certificate[0]) || len(fp) != 64 {
		t.Fatalf("fingerprint %q", fp)
	}
	x, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	if len(x.DNSNames) != 2 || len(x.IPAddresses) != 2 || !x.IPAddresses[0].Equal(net.ParseIP("127.0.0.1")) {
		t.Fatalf("SANs %v %v", x.DNSNames, x.IPAddresses)
	}
	if err := x.VerifyHostname("manage.example"); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(filepath.Join(dir, "key.pem")); st.Mode().Perm() != 0o600 {
		t.Fatalf("key mode %v", st.Mode())
	}
	// Second start: same certificate.
	_, fp2, created, err := LoadOrCreate(dir, []string{"other"})
	if err != nil || created || fp2 != fp {
		t.Fatalf("reload: %v %v %s", created, err, fp2)
	}
	if got := Format("ab01"); got != "AB:01" {
		t.Fatalf("Format = %q", got)
	}
	// A corrupt certificate is an error, not silently replaced.
	if err := os.WriteFile(filepath.Join(dir, "cert.pem"), []byte("junk"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := LoadOrCreate(dir, nil); err == nil {
		t.Fatal("corrupt certificate accepted")
	}
}
