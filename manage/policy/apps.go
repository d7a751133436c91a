package policy

import (
	"slices"
	"strings"
	"time"

	"github.com/trellis-sdwan/trellis/manage/store"
	"github.com/trellis-sdwan/trellis/wire/devproto"
)

// Application sources.
const (
	SourceBuiltin = "builtin"
	SourceCustom  = "custom"
)

// App is an application as an organization sees it: a catalogue one (with
// the organization's override applied) or one of its own.
type App struct {
	ID           string             `json:"id"`
	Name         string             `json:"name"`
	Category     string             `json:"category"`
	ServiceClass string             `json:"service_class"`
	Importance   string             `json:"importance"`
	Description  string             `json:"description"`
	Rules        []devproto.AppRule `json:"rules"`
	Source       string             `json:"source"` // builtin, custom
	// Override is the organization's change of a built-in application.
	Override  *store.AppOverride `json:"override,omitempty"`
	CreatedAt *time.Time         `json:"created_at,omitempty"`
	UpdatedAt *time.Time         `json:"updated_at,omitempty"`
}

// Wire is the application as a desired document carries it.
func (a App) Wire() devproto.Application {
	return devproto.Application{ID: a.ID, Name: a.Name, Category: a.Category, ServiceClass: a.ServiceClass,
		Importance: a.Importance, Rules: slices.Clone(a.Rules)}
}

// Merge builds the organization's applications: the catalogue's with
// overrides applied (an override of an application the catalogue no
// longer has is ignored) and its own, sorted by name then id.
func Merge(c *Catalog, custom []store.Application, overrides []store.AppOverride) []App {
	ov := map[string]store.AppOverride{}
	for _, o := range overrides {
		ov[o.AppID] = o
	}
	out := make([]App, 0, len(c.Apps)+len(custom))
	for _, ca := range c.Apps {
		a := App{ID: ca.ID, Name: ca.Name, Category: ca.Category, ServiceClass: ca.ServiceClass, Importance: ca.Importance,
			Description: ca.Description, Rules: ca.Rules, Source: SourceBuiltin}
		if o, ok := ov[ca.ID]; ok {
			o := o
			a.Override = &o
			if o.Category != "" {
				a.Category = o.Category
			}
			if o.ServiceClass != "" {
				a.ServiceClass = o.ServiceClass
			}
			if o.Importance != "" {
				a.Importance = o.Importance
			}
		}
		out = append(out, a)
	}
	for _, x := range custom {
		x := x
		out = append(out, App{ID: x.ID, Name: x.Name, Category: x.Category, ServiceClass: x.ServiceClass,
			Importance: x.Importance, Description: x.Description, Rules: x.Rules, Source: SourceCustom,
			CreatedAt: &x.CreatedAt, UpdatedAt: &x.UpdatedAt})
	}
	slices.SortFunc(out, func(a, b App) int {
		if c := strings.Compare(strings.ToLower(a.Name), strings.ToLower(b.Name)); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out
}

// NewRefs indexes applications and labels for validation.
func NewRefs(apps []App, labels []store.PathLabel) *Refs {
	r := &Refs{Apps: map[string]App{}, Categories: map[string]bool{}, Labels: map[string]string{}}
	for _, a := range apps {
		r.Apps[a.ID] = a
		r.Categories[a.Category] = true
	}
	for _, l := range labels {
		r.Labels[l.ID] = l.Type
	}
	return r
}

// CustomInput is an organization's own application as the API takes it.
type CustomInput struct {
	Name         string             `json:"name"`
	Category     string             `json:"category"`
	ServiceClass string             `json:"service_class"`
	Importance   string             `json:"importance"`
	Description  string             `json:"description"`
	Rules        []devproto.AppRule `json:"rules"`
}

// CheckCustom validates an organization's own application against the
// merged set (its name may be no other application's, built-in or own;
// selfID is its id when it is being changed) and canonicalises its rules.
func CheckCustom(in CustomInput, apps []App, selfID string) (CustomInput, error) {
	in.Name = strings.TrimSpace(in.Name)
	if in.Importance == "" {
		in.Importance = "medium"
	}
	if in.ServiceClass == "" {
		in.ServiceClass = devproto.ClassStandard
	}
	if err := checkAppFields(in.Name, in.Category, in.ServiceClass, in.Importance); err != nil {
		return in, err
	}
	if len(in.Description) > 1024 {
		return in, fieldErr("description", "at most 1024 characters")
	}
	for _, a := range apps {
		if a.ID != selfID && strings.EqualFold(a.Name, in.Name) {
			return in, fieldErr("name", "%q is already the name of application %q (%s): choose another", in.Name, a.ID, a.Source)
		}
	}
	rules, err := CheckAppRules(in.Rules)
	if err != nil {
		return in, err
	}
	if len(rules) == 0 {
		return in, fieldErr("rules", "an application needs at least one rule (prefixes, protocol, ports)")
	}
	in.Rules = rules
	return in, nil
}

// CheckOverride validates an override's fields (empty keeps the built-in
// value; at least one given).
func CheckOverride(o store.AppOverride) error {
	if o.Category == "" && o.ServiceClass == "" && o.Importance == "" {
		return fieldErr("category", "give at least one of category, service_class, importance")
	}
	if o.Category != "" {
		if err := checkCategory(o.Category); err != nil {
			return err
		}
	}
	if o.ServiceClass != "" {
		if err := checkClass(o.ServiceClass); err != nil {
			return err
		}
	}
	if o.Importance != "" {
		if err := checkImportance(o.Importance); err != nil {
			return err
		}
	}
	return nil
}
