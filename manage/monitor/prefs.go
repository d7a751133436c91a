package monitor

import (
	"encoding/json"
	"fmt"
	"slices"
)

// Prefs are what a user chooses to receive. Stored as JSON; fields left
// out keep their defaults.
type Prefs struct {
	// Types are the alert types wanted (empty: all).
	Types []string `json:"types"`
	// MinSeverity is the least severity wanted (default warning).
	MinSeverity string `json:"min_severity"`
	// InApp: notifications in the in-app list (default true).
	InApp bool `json:"in_app"`
	// EmailDigest: a daily mail of the unread ones (default true).
	EmailDigest bool `json:"email_digest"`
	// EmailCritical: a mail at once for each critical alert (default
	// false: opt in).
	EmailCritical bool `json:"email_critical"`
}

// DefaultPrefs are those of a user who chose nothing.
func DefaultPrefs() Prefs {
	return Prefs{Types: []string{}, MinSeverity: SeverityWarning, InApp: true, EmailDigest: true}
}

// DecodePrefs reads stored (or requested) preferences over the defaults.
func DecodePrefs(raw []byte) (Prefs, error) {
	p := DefaultPrefs()
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &p); err != nil {
			return DefaultPrefs(), fmt.Errorf("notification preferences: %w", err)
		}
	}
	if p.Types == nil {
		p.Types = []string{}
	}
	return p, p.Validate()
}

// Validate checks types and severity.
func (p Prefs) Validate() error {
	if SeverityRank(p.MinSeverity) == 0 {
		return &FieldError{Field: "min_severity", Message: "want info, warning or critical"}
	}
	known := AlertTypes()
	for i, t := range p.Types {
		if !slices.Contains(known, t) {
			return &FieldError{Field: fmt.Sprintf("types[%d]", i), Message: fmt.Sprintf("unknown alert type %q (known: %v)", t, known)}
		}
	}
	return nil
}

// Wants reports whether the preferences accept an alert of this type and
// severity (channels aside).
func (p Prefs) Wants(typ, severity string) bool {
	if SeverityRank(severity) < SeverityRank(p.MinSeverity) {
		return false
	}
	return len(p.Types) == 0 || slices.Contains(p.Types, typ)
}
