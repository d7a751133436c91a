// Package state keeps what trellis-edge must remember across restarts in a
// private directory (default /var/lib/trellis-edge, mode 0700):
//
//	credential.json  the device identity and credential from registration
//	desired.json     the last good desired-state document (raw, as sent)
//
// Every file is written with mode 0600 and atomically (a temporary file in
// the same directory, fsynced, then renamed over the old one, then the
// directory fsynced), so a crash leaves either the old or the new content.
package state

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// DefaultDir is the default state directory.
const DefaultDir = "/var/lib/trellis-edge"

// File names inside the state directory.
const (
	CredentialFile = "credential.json"
	DesiredFile    = "desired.json"
	// SocketFile is the agent's local control socket (see package agent).
	SocketFile = "agent.sock"
)

// maxFile bounds what Load reads from a state file.
const maxFile = 16 << 20

// ErrNotFound is returned (wrapped) when a state file does not exist yet.
var ErrNotFound = errors.New("not found")

// Credential is the device identity received at registration.
type Credential struct {
	DeviceID    string    `json:"device_id"`
	OrgID       string    `json:"org_id"`
	ManageURL   string    `json:"manage_url"`
	Fingerprint string    `json:"fingerprint,omitempty"` // hex SHA-256 of manage's certificate
	Credential  string    `json:"credential"`
	TokenID     string    `json:"token_id,omitempty"`
	Approval    string    `json:"approval,omitempty"` // as answered at registration
	MachineID   string    `json:"machine_id,omitempty"`
	Registered  time.Time `json:"registered_at"`
}

// Validate checks that a credential is usable.
func (c Credential) Validate() error {
	switch {
	case c.DeviceID == "":
		return errors.New("no device id")
	case c.Credential == "":
		return errors.New("no credential")
	case !strings.HasPrefix(c.ManageURL, "https://") && !strings.HasPrefix(c.ManageURL, "http://"):
		return fmt.Errorf("manage URL %q is not http(s)", c.ManageURL)
	}
	if c.Fingerprint != "" {
		if b, err := hex.DecodeString(c.Fingerprint); err != nil || len(b) != sha256.Size {
			return errors.New("fingerprint is not 64 hex digits")
		}
	}
	return nil
}

// Doc is a stored desired-state document: the raw document bytes exactly
// as manage sent them and their version.
type Doc struct {
	Version string
	Doc     json.RawMessage
	Applied time.Time
}

// docFile is Doc on disk: the document is kept as a JSON string so that its
// bytes (which its version hashes) survive exactly.
type docFile struct {
	Version string    `json:"version"`
	Applied time.Time `json:"applied_at"`
	Doc     string    `json:"doc"`
}

// Dir is a state directory.
type Dir struct{ path string }

// Open creates the directory (mode 0700) if needed and returns it.
func Open(path string) (*Dir, error) {
	if path == "" {
		return nil, errors.New("state directory: empty path")
	}
	if err := os.MkdirAll(path, 0o700); err != nil {
		return nil, fmt.Errorf("state directory %s: %w", path, err)
	}
	return &Dir{path: path}, nil
}

// Path returns the directory.
func (d *Dir) Path() string { return d.path }

// File returns the path of a file in the directory.
func (d *Dir) File(name string) string { return filepath.Join(d.path, name) }

// LoadCredential reads the stored credential; ErrNotFound when the device
// has not registered yet.
func (d *Dir) LoadCredential() (Credential, error) {
	var c Credential
	if err := d.readJSON(CredentialFile, &c); err != nil {
		return c, err
	}
	if err := c.Validate(); err != nil {
		return c, fmt.Errorf("%s: %w (run `trellis-edge reset --yes` to register again)", d.File(CredentialFile), err)
	}
	return c, nil
}

// SaveCredential stores the credential (mode 0600, atomically).
func (d *Dir) SaveCredential(c Credential) error {
	if err := c.Validate(); err != nil {
		return fmt.Errorf("refusing to store credential: %w", err)
	}
	return d.writeJSON(CredentialFile, c)
}

// LoadDoc reads the last good document; ErrNotFound when there is none.
func (d *Dir) LoadDoc() (Doc, error) {
	var f docFile
	if err := d.readJSON(DesiredFile, &f); err != nil {
		return Doc{}, err
	}
	doc := Doc{Version: f.Version, Doc: json.RawMessage(f.Doc), Applied: f.Applied}
	if doc.Version == "" || len(doc.Doc) == 0 {
		return doc, fmt.Errorf("%s: no version or no document", d.File(DesiredFile))
	}
	return doc, nil
}

// SaveDoc stores the last good document (mode 0600, atomically).
func (d *Dir) SaveDoc(doc Doc) error {
	if doc.Version == "" || len(doc.Doc) == 0 {
		return errors.New("refusing to store a document without version or content")
	}
	return d.writeJSON(DesiredFile, docFile{Version: doc.Version, Applied: doc.Applied, Doc: string(doc.Doc)})
}

// Reset forgets the credential and the stored document.
func (d *Dir) Reset() error {
	var errs []error
	for _, name := range []string{CredentialFile, DesiredFile} {
		if err := os.Remove(d.File(name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (d *Dir) readJSON(name string, v any) error {
	p := d.File(name)
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s: %w", p, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("reading %s: %w", p, err)
	}
	defer f.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(io.LimitReader(f, maxFile+1)); err != nil {
		return fmt.Errorf("reading %s: %w", p, err)
	}
	if buf.Len() > maxFile {
		return fmt.Errorf("%s: larger than %d bytes", p, maxFile)
	}
	dec := json.NewDecoder(&buf)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	return nil
}

func (d *Dir) writeJSON(name string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding %s: %w", name, err)
	}
	return WriteFileAtomic(d.File(name), append(b, '\n'))
}

// WriteFileAtomic writes data to path with mode 0600: a temporary file in
// the same directory is written and fsynced, renamed over path, and the
// directory fsynced.
func WriteFileAtomic(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err = f.Chmod(0o600); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if _, err = f.Write(data); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if dh, derr := os.Open(dir); derr == nil {
		_ = dh.Sync()
		dh.Close()
	}
	return nil
}
