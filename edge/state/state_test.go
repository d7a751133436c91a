package state

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func testCred() Credential {
	return Credential{
		DeviceID: "dev_1", OrgID: "org_1", ManageURL: "https://127.0.0.1:8443",
		Fingerprint: strings.Repeat("ab", 32), Credential: "tdc_secret", Registered: time.Unix(1, 0).UTC(),
	}
}

func TestCredentialRoundTripAndMode(t *testing.T) {
	d, err := Open(filepath.Join(t.TempDir(), "state"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.LoadCredential(); !errors.Is(err, ErrNotFound) {
		t.Fatalf("LoadCredential on empty dir: %v, want ErrNotFound", err)
	}
	want := testCred()
	if err := d.SaveCredential(want); err != nil {
		t.Fatal(err)
	}
	got, err := d.LoadCredential()
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	for _, name := range []string{CredentialFile} {
		fi, err := os.Stat(d.File(name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", name, fi.Mode().Perm())
		}
	}
	fi, err := os.Stat(d.Path())
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("dir mode %v, want 0700", fi.Mode().Perm())
	}
}

func TestSaveCredentialValidates(t *testing.T) {
	d, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		mod  func(*Credential)
	}{
		{"no device id", func(c *Credential) { c.DeviceID = "" }},
		{"no credential", func(c *Credential) { c.Credential = "" }},
		{"bad url", func(c *Credential) { c.ManageURL = "ftp://x" }},
		{"bad fingerprint", func(c *Credential) { c.Fingerprint = "abcd" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := testCred()
			tc.mod(&c)
			if err := d.SaveCredential(c); err == nil {
				t.Fatal("saved an invalid credential")
			}
			if _, err := os.Stat(d.File(CredentialFile)); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("file exists after refused save: %v", err)
			}
		})
	}
}

func TestAtomicWriteReplacesAndLeavesNoTemp(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	// An existing file with looser permissions is replaced by a 0600 one.
	if err := os.WriteFile(p, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		data := []byte(strings.Repeat("x", i*1000+1))
		if err := WriteFileAtomic(p, data); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(p)
		if err != nil || string(got) != string(data) {
			t.Fatalf("round %d: read %d bytes, %v", i, len(got), err)
		}
		fi, _ := os.Stat(p)
		if fi.Mode().Perm() != 0o600 {
			t.Fatalf("mode %v, want 0600", fi.Mode().Perm())
		}
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("directory holds %d entries, want only the file (temporary files left?)", len(ents))
	}
	// A failed write (the target is a directory) leaves no temporary file
	// and does not touch the directory.
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := WriteFileAtomic(sub, []byte("x")); err == nil {
		t.Fatal("rename over a directory succeeded")
	}
	ents, _ = os.ReadDir(dir)
	if len(ents) != 2 {
		t.Fatalf("directory holds %d entries after a failed write, want 2", len(ents))
	}
}

func TestDocRoundTripAndReset(t *testing.T) {
	d, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.LoadDoc(); !errors.Is(err, ErrNotFound) {
		t.Fatalf("LoadDoc: %v, want ErrNotFound", err)
	}
	if err := d.SaveDoc(Doc{Version: "v"}); err == nil {
		t.Fatal("saved a doc without content")
	}
	raw := json.RawMessage(`{"name":"a","device_id":"d"}`)
	if err := d.SaveDoc(Doc{Version: "v1", Doc: raw}); err != nil {
		t.Fatal(err)
	}
	got, err := d.LoadDoc()
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != "v1" || string(got.Doc) != string(raw) {
		t.Fatalf("got %+v", got)
	}
	if err := d.SaveCredential(testCred()); err != nil {
		t.Fatal(err)
	}
	if err := d.Reset(); err != nil {
		t.Fatal(err)
	}
	if _, err := d.LoadDoc(); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after reset LoadDoc: %v", err)
	}
	if _, err := d.LoadCredential(); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after reset LoadCredential: %v", err)
	}
	if err := d.Reset(); err != nil {
		t.Fatalf("second reset: %v", err)
	}
}

func TestLoadRejectsGarbage(t *testing.T) {
	d, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, content := range []string{"", "{", `{"device_id":"d","bogus":1}`, `{"device_id":"d"}`} {
		if err := os.WriteFile(d.File(CredentialFile), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := d.LoadCredential(); err == nil || errors.Is(err, ErrNotFound) {
			t.Errorf("content %q: err %v, want a parse/validation error", content, err)
		}
	}
}
