package policy

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/trellis-sdwan/trellis/manage/store"
	"github.com/trellis-sdwan/trellis/wire/devproto"
)

//go:embed catalog.json
var builtinCatalog []byte

// Limits of a catalogue.
const (
	MaxCatalogBytes   = 4 << 20 // a catalogue file or URL answer
	MaxApplications   = 2000    // per catalogue, and custom ones per organization
	MaxAppRules       = 256     // per application
	MaxRuleParts      = 256     // prefixes or ports per rule
	DefaultFetchLimit = 30 * time.Second
)

// CatalogSetting is the settings key under which an operator-loaded
// catalogue is kept (JSON of Catalog), so that every replica compiles
// with the same one. Without it, the built-in catalogue applies.
const CatalogSetting = "app_catalog"

// Catalog is a set of applications with a version.
type Catalog struct {
	Version     string       `json:"version"`
	Description string       `json:"description,omitempty"`
	Apps        []CatalogApp `json:"applications"`
	Source      string       `json:"source,omitempty"`    // "builtin", a path or a URL
	LoadedAt    *time.Time   `json:"loaded_at,omitempty"` // when an operator loaded it
	byID        map[string]int
}

// CatalogApp is one application of a catalogue.
type CatalogApp struct {
	devproto.Application
	Description string `json:"description,omitempty"`
}

// Importance levels.
var importances = []string{"high", "medium", "low"}

// Classes are the service classes, highest priority first.
var Classes = []string{devproto.ClassRealtime, devproto.ClassControl, devproto.ClassPrime, devproto.ClassStandard, devproto.ClassBestEffort}

var (
	appIDRE    = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)
	categoryRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)
)

// builtin parses the shipped catalogue once; it is never changed after.
var builtin = sync.OnceValue(func() *Catalog {
	c, err := ParseCatalog(builtinCatalog)
	if err != nil {
		panic("policy: the built-in catalogue is invalid: " + err.Error())
	}
	c.Source = "builtin"
	return c
})

// Builtin returns the catalogue shipped with manage (a copy of the
// struct; its lists are shared and must not be modified).
func Builtin() *Catalog {
	c := *builtin()
	return &c
}

// ParseCatalog decodes and validates a catalogue (JSON; unknown fields
// refused).
func ParseCatalog(b []byte) (*Catalog, error) {
	if len(b) > MaxCatalogBytes {
		return nil, fmt.Errorf("catalogue is %d bytes, more than the %d allowed", len(b), MaxCatalogBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var c Catalog
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("decoding catalogue: %w", err)
	}
	if dec.More() {
		return nil, errors.New("decoding catalogue: trailing data after the JSON document")
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

func (c *Catalog) validate() error {
	c.Version = strings.TrimSpace(c.Version)
	if c.Version == "" || len(c.Version) > 64 {
		return errors.New("catalogue: version must be 1 to 64 characters")
	}
	if len(c.Apps) == 0 {
		return errors.New("catalogue: it lists no applications")
	}
	if len(c.Apps) > MaxApplications {
		return fmt.Errorf("catalogue: %d applications, at most %d", len(c.Apps), MaxApplications)
	}
	c.byID = make(map[string]int, len(c.Apps))
	names := map[string]string{}
	for i := range c.Apps {
		a := &c.Apps[i]
		where := fmt.Sprintf("catalogue: applications[%d]", i)
		if !appIDRE.MatchString(a.ID) {
			return fmt.Errorf("%s: id %q must be 1-64 lower-case letters, digits, '.', '_' or '-'", where, a.ID)
		}
		if _, dup := c.byID[a.ID]; dup {
			return fmt.Errorf("%s: id %q appears twice", where, a.ID)
		}
		c.byID[a.ID] = i
		if err := checkAppFields(a.Name, a.Category, a.ServiceClass, a.Importance); err != nil {
			return fmt.Errorf("%s (%s): %w", where, a.ID, err)
		}
		key := strings.ToLower(a.Name)
		if other, dup := names[key]; dup {
			return fmt.Errorf("%s: name %q is also the name of %q", where, a.Name, other)
		}
		names[key] = a.ID
		rules, err := CheckAppRules(a.Rules)
		if err != nil {
			return fmt.Errorf("%s (%s): %w", where, a.ID, err)
		}
		if len(rules) == 0 {
			return fmt.Errorf("%s (%s): an application needs at least one rule", where, a.ID)
		}
		a.Rules = rules
	}
	return nil
}

// App returns the catalogue's application with this id.
func (c *Catalog) App(id string) (CatalogApp, bool) {
	if c.byID == nil {
		c.byID = map[string]int{}
		for i, a := range c.Apps {
			c.byID[a.ID] = i
		}
	}
	i, ok := c.byID[id]
	if !ok {
		return CatalogApp{}, false
	}
	return c.Apps[i], true
}

// checkAppFields checks the descriptive fields of an application.
func checkAppFields(name, category, class, importance string) error {
	if err := checkCategory(category); err != nil {
		return err
	}
	if err := checkClass(class); err != nil {
		return err
	}
	if err := checkImportance(importance); err != nil {
		return err
	}
	if strings.TrimSpace(name) == "" || len(name) > 128 {
		return fieldErr("name", "must be 1 to 128 characters")
	}
	return nil
}

func checkCategory(c string) error {
	if !categoryRE.MatchString(c) {
		return fieldErr("category", "%q: a category is 1-64 lower-case letters, digits, '.', '_' or '-' (e.g. collaboration)", c)
	}
	return nil
}

func checkClass(c string) error {
	for _, k := range Classes {
		if c == k {
			return nil
		}
	}
	return fieldErr("service_class", "%q: must be one of %s", c, strings.Join(Classes, ", "))
}

func checkImportance(i string) error {
	for _, k := range importances {
		if i == k {
			return nil
		}
	}
	return fieldErr("importance", "%q: must be high, medium or low", i)
}

// Fetch reads a catalogue from a file path or an http(s) URL, at most
// MaxCatalogBytes, within ctx (give it a deadline; DefaultFetchLimit is a
// sensible one) and validates it.
func Fetch(ctx context.Context, src string, client *http.Client) (*Catalog, error) {
	src = strings.TrimSpace(src)
	if src == "" {
		return nil, errors.New("no catalogue source given: a file path or an http(s) URL")
	}
	var (
		b   []byte
		err error
	)
	if u, perr := url.Parse(src); perr == nil && (u.Scheme == "http" || u.Scheme == "https") {
		b, err = fetchURL(ctx, src, client)
	} else {
		b, err = readFile(src)
	}
	if err != nil {
		return nil, err
	}
	c, err := ParseCatalog(b)
	if err != nil {
		return nil, fmt.Errorf("catalogue from %s: %w", src, err)
	}
	c.Source = src
	return c, nil
}

func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading catalogue: %w", err)
	}
	defer f.Close()
	return readBounded(f, path)
}

func readBounded(r io.Reader, src string) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxCatalogBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading catalogue from %s: %w", src, err)
	}
	if len(b) > MaxCatalogBytes {
		return nil, fmt.Errorf("catalogue from %s is larger than %d bytes", src, MaxCatalogBytes)
	}
	return b, nil
}

func fetchURL(ctx context.Context, src string, client *http.Client) ([]byte, error) {
	if client == nil {
		client = &http.Client{Timeout: DefaultFetchLimit}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, src, nil)
	if err != nil {
		return nil, fmt.Errorf("catalogue URL %s: %w", src, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetching catalogue: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetching catalogue from %s: HTTP %s", src, resp.Status)
	}
	return readBounded(resp.Body, src)
}

// LoadCatalog returns the catalogue in force: the one an operator loaded
// (the CatalogSetting), else the built-in one.
func LoadCatalog(ctx context.Context, st store.Store) (*Catalog, error) {
	v, err := st.GetSetting(ctx, CatalogSetting)
	if errors.Is(err, store.ErrNotFound) || (err == nil && v == "") {
		return Builtin(), nil
	}
	if err != nil {
		return nil, fmt.Errorf("loading the application catalogue: %w", err)
	}
	var c Catalog
	if err := json.Unmarshal([]byte(v), &c); err != nil {
		return nil, fmt.Errorf("decoding the stored application catalogue: %w", err)
	}
	if err := c.validate(); err != nil {
		return nil, fmt.Errorf("the stored application catalogue: %w", err)
	}
	return &c, nil
}

// SaveCatalog makes c the catalogue in force (every replica compiles with
// it from then on); at is its load time.
func SaveCatalog(ctx context.Context, st store.Store, c *Catalog, at time.Time) error {
	at = at.UTC()
	c.LoadedAt = &at
	b, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("encoding the application catalogue: %w", err)
	}
	if err := st.SetSetting(ctx, CatalogSetting, string(b)); err != nil {
		return fmt.Errorf("storing the application catalogue: %w", err)
	}
	return nil
}
