package monitor

import (
	"crypto/rand"
	"encoding/hex"
)

func newDeliveryID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return "dlv_" + hex.EncodeToString(b[:])
}

// NewWebhookSecret returns a random secret for a new webhook (shown once).
func NewWebhookSecret() string {
	var b [24]byte
	_, _ = rand.Read(b[:])
	return "whsec_" + hex.EncodeToString(b[:])
}
