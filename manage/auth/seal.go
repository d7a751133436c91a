package auth

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Sealer encrypts small secrets at rest (TOTP secrets, the token signing
// key) with AES-256-GCM. The additional data binds a ciphertext to its use
// (e.g. "totp:<user id>") so it cannot be moved to another row.
type Sealer struct {
	aead cipher.AEAD
}

const sealVersion = "v1:"

// NewSealer returns a sealer for a 32-byte key.
func NewSealer(key []byte) (*Sealer, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("seal key must be 32 bytes, got %d", len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("creating AES cipher: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("creating GCM: %w", err)
	}
	return &Sealer{aead: aead}, nil
}

// LoadOrCreateSealKey reads the 32-byte key file at path, creating it (mode
// 0600) with a random key when it does not exist.
func LoadOrCreateSealKey(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		if len(b) != 32 {
			return nil, fmt.Errorf("seal key %s: want 32 bytes, found %d: restore the original file", path, len(b))
		}
		return b, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("reading seal key: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("creating key directory: %w", err)
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("generating seal key: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("creating seal key: %w", err)
	}
	if _, err := f.Write(key); err != nil {
		f.Close()
		return nil, fmt.Errorf("writing seal key: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("writing seal key: %w", err)
	}
	return key, nil
}

// Seal encrypts plaintext bound to purpose.
func (s *Sealer) Seal(plaintext []byte, purpose string) string {
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		panic("crypto/rand: " + err.Error())
	}
	ct := s.aead.Seal(nonce, nonce, plaintext, []byte(purpose))
	return sealVersion + base64.RawStdEncoding.EncodeToString(ct)
}

// ErrUnseal is returned when a sealed value cannot be decrypted (wrong key,
// wrong purpose or corrupt data).
var ErrUnseal = errors.New("cannot unseal secret: wrong seal key or corrupt value")

// Open decrypts a value from Seal with the same purpose.
func (s *Sealer) Open(sealed, purpose string) ([]byte, error) {
	rest, ok := strings.CutPrefix(sealed, sealVersion)
	if !ok {
		return nil, ErrUnseal
	}
	ct, err := base64.RawStdEncoding.DecodeString(rest)
	if err != nil || len(ct) < s.aead.NonceSize()+s.aead.Overhead() {
		return nil, ErrUnseal
	}
	n := s.aead.NonceSize()
	pt, err := s.aead.Open(nil, ct[:n], ct[n:], []byte(purpose))
	if err != nil {
		return nil, ErrUnseal
	}
	return pt, nil
}
