package ctl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/trellis-sdwan/trellis/client"
)

// listFlags are the flags every list command has.
type listFlags struct {
	limit   int
	offset  int
	sort    string
	all     bool
	filters []string
	named   map[string]*string // API filter key -> flag value
}

// addListFlags adds --limit, --offset, --sort, --all, --filter and one flag
// per documented filter key (conn_state becomes --conn-state).
func addListFlags(cmd *cobra.Command, filterKeys ...string) *listFlags {
	lf := &listFlags{named: map[string]*string{}}
	f := cmd.Flags()
	f.IntVar(&lf.limit, "limit", 0, "items per page (server default 50, at most 1000)")
	f.IntVar(&lf.offset, "offset", 0, "skip this many items")
	f.StringVar(&lf.sort, "sort", "", "sort by a field; -field for descending")
	f.BoolVar(&lf.all, "all", false, "fetch every page")
	f.StringArrayVar(&lf.filters, "filter", nil, "filter as field=value (repeatable)")
	for _, k := range filterKeys {
		v := new(string)
		lf.named[k] = v
		f.StringVar(v, strings.ReplaceAll(k, "_", "-"), "", "filter on "+k)
	}
	return lf
}

// params turns the flags into list parameters.
func (lf *listFlags) params() (client.ListParams, error) {
	p := client.ListParams{Limit: lf.limit, Offset: lf.offset, Sort: lf.sort, Filter: map[string]string{}}
	if lf.limit < 0 || lf.limit > client.MaxLimit {
		return p, usagef("--limit must be between 1 and %d", client.MaxLimit)
	}
	if lf.offset < 0 {
		return p, usagef("--offset must not be negative")
	}
	for _, kv := range lf.filters {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return p, usagef("--filter %q: use field=value", kv)
		}
		p.Filter[strings.TrimSpace(k)] = v
	}
	for k, v := range lf.named {
		if *v != "" {
			p.Filter[k] = *v
		}
	}
	return p, nil
}

// runList fetches one page (or all with --all) and prints it.
func runList[T any](ctx context.Context, c *cli, v view[T], lf *listFlags, fetch client.ListFunc[T]) error {
	p, err := lf.params()
	if err != nil {
		return err
	}
	// Collect the items of every page as the server sent them, for JSON.
	var raw []json.RawMessage
	rawFetch := func(ctx context.Context, p client.ListParams) (*client.Page[T], error) {
		var body json.RawMessage
		page, err := fetch(client.WithRawAnswer(ctx, &body), p)
		if err != nil {
			return nil, err
		}
		var env struct {
			Items []json.RawMessage `json:"items"`
		}
		if json.Unmarshal(body, &env) == nil && len(env.Items) == len(page.Items) {
			raw = append(raw, env.Items...)
		}
		return page, nil
	}
	if lf.all {
		items, err := client.Collect(ctx, rawFetch, p)
		if err != nil {
			return err
		}
		return printList(c, v, items, raw)
	}
	page, err := rawFetch(ctx, p)
	if err != nil {
		return err
	}
	if err := printList(c, v, page.Items, raw); err != nil {
		return err
	}
	if c.output == "table" && page.Offset+len(page.Items) < page.Total {
		fmt.Fprintf(c.io.Stderr, "(%d-%d of %d shown: use --all, or --offset %d for the next page)\n",
			page.Offset+1, page.Offset+len(page.Items), page.Total, page.Offset+len(page.Items))
	}
	return nil
}

// lookupError says no object has that id or name.
type lookupError struct{ what, ref string }

func (e *lookupError) Error() string {
	return fmt.Sprintf("no %s with id or name %q (or you may not see it)", e.what, e.ref)
}

// resolve finds an object by id, or else by exact name among all objects of
// the list (case-insensitive when no exact match exists).
func resolve[T any](ctx context.Context, what, ref string,
	get func(ctx context.Context, id string) (*T, error), list client.ListFunc[T],
	idOf, nameOf func(T) string) (*T, error) {
	ref = strings.TrimSpace(ref)
	if ref == "" {
		return nil, usagef("empty %s id or name", what)
	}
	obj, err := get(ctx, ref)
	if err == nil {
		return obj, nil
	}
	if !client.HasCode(err, client.CodeNotFound) && !client.HasCode(err, client.CodeBadRequest) &&
		!client.HasCode(err, client.CodeInvalid) {
		return nil, err
	}
	all, lerr := client.Collect(ctx, list, client.ListParams{})
	if lerr != nil {
		return nil, errors.Join(err, lerr)
	}
	var exact, folded []T
	for _, it := range all {
		switch {
		case idOf(it) == ref:
			return &it, nil
		case nameOf(it) == ref:
			exact = append(exact, it)
		case strings.EqualFold(nameOf(it), ref):
			folded = append(folded, it)
		}
	}
	matches := exact
	if len(matches) == 0 {
		matches = folded
	}
	switch len(matches) {
	case 0:
		return nil, &lookupError{what, ref}
	case 1:
		return &matches[0], nil
	}
	ids := make([]string, len(matches))
	for i, m := range matches {
		ids[i] = idOf(m)
	}
	sort.Strings(ids)
	return nil, fmt.Errorf("%d %ss are named %q: use one of the ids %s", len(matches), what, ref, strings.Join(ids, ", "))
}

func (c *cli) resolveOrg(ctx context.Context, cl *client.Client, ref string) (*client.Organization, error) {
	return resolve(ctx, "organization", ref, cl.GetOrganization, cl.ListOrganizations,
		func(o client.Organization) string { return o.ID }, func(o client.Organization) string { return o.Name })
}

func (c *cli) resolveAccount(ctx context.Context, cl *client.Client, ref string) (*client.Account, error) {
	return resolve(ctx, "account", ref, cl.GetAccount, cl.ListAccounts,
		func(a client.Account) string { return a.ID }, func(a client.Account) string { return a.Name })
}

func (c *cli) resolveGroup(ctx context.Context, cl *client.Client, accountID, ref string) (*client.Group, error) {
	return resolve(ctx, "group", ref,
		func(ctx context.Context, id string) (*client.Group, error) { return cl.GetGroup(ctx, accountID, id) },
		func(ctx context.Context, p client.ListParams) (*client.Page[client.Group], error) {
			return cl.ListGroups(ctx, accountID, p)
		},
		func(g client.Group) string { return g.ID }, func(g client.Group) string { return g.Name })
}

// orgRef is the organization this run addresses: --org, $TRELLIS_ORG, or
// the one selected with `org use` (id).
func (c *cli) orgRef() (ref string, fromConfig bool, err error) {
	if r := firstNonEmpty(c.org, c.io.Getenv("TRELLIS_ORG")); r != "" {
		return r, false, nil
	}
	cfg, err := c.config()
	if err != nil {
		return "", false, err
	}
	return cfg.OrgID, true, nil
}

// orgID returns the id of the organization this run addresses.
func (c *cli) orgID(ctx context.Context, cl *client.Client) (string, error) {
	ref, fromConfig, err := c.orgRef()
	if err != nil {
		return "", err
	}
	if ref == "" {
		return "", usagef("no organization selected: run `trellisctl org use NAME`, or pass --org NAME")
	}
	if fromConfig {
		return ref, nil
	}
	o, err := c.resolveOrg(ctx, cl, ref)
	if err != nil {
		return "", err
	}
	return o.ID, nil
}

// accountID returns the account of account-level commands: --account, the
// account of the selected organization, or the only account visible.
func (c *cli) accountID(ctx context.Context, cl *client.Client) (string, error) {
	if c.account != "" {
		a, err := c.resolveAccount(ctx, cl, c.account)
		if err != nil {
			return "", err
		}
		return a.ID, nil
	}
	if ref, _, err := c.orgRef(); err == nil && ref != "" {
		id, err := c.orgID(ctx, cl)
		if err != nil {
			return "", err
		}
		o, err := cl.GetOrganization(ctx, id)
		if err != nil {
			return "", fmt.Errorf("finding the account of organization %s: %w", id, err)
		}
		return o.AccountID, nil
	}
	page, err := cl.ListAccounts(ctx, client.ListParams{Limit: 2})
	if err != nil {
		return "", err
	}
	switch {
	case len(page.Items) == 1 && page.Total <= 1:
		return page.Items[0].ID, nil
	case len(page.Items) == 0:
		return "", errors.New("you are not a member of any account")
	}
	return "", usagef("you see %d accounts: pass --account NAME (or select an organization with `org use`)", page.Total)
}

// grant resolves the scope of a membership, invitation or access key.
// Without --scope it is the selected organization, else the account (the
// least privilege that makes sense); --scope-id takes an id or a name.
func (c *cli) grant(ctx context.Context, cl *client.Client, accountID, scope, scopeRef string) (string, string, error) {
	if scope == "" {
		if ref, _, err := c.orgRef(); err == nil && ref != "" {
			scope = client.ScopeOrganization
		} else {
			scope = client.ScopeAccount
		}
	}
	switch scope {
	case "org":
		scope = client.ScopeOrganization
	case client.ScopeAccount, client.ScopeGroup, client.ScopeOrganization:
	default:
		return "", "", usagef("--scope %q: use account, group or organization", scope)
	}
	switch scope {
	case client.ScopeAccount:
		if scopeRef == "" || scopeRef == accountID {
			return scope, accountID, nil
		}
		a, err := c.resolveAccount(ctx, cl, scopeRef)
		if err != nil {
			return "", "", err
		}
		return scope, a.ID, nil
	case client.ScopeGroup:
		if scopeRef == "" {
			return "", "", usagef("--scope group needs --scope-id GROUP")
		}
		g, err := c.resolveGroup(ctx, cl, accountID, scopeRef)
		if err != nil {
			return "", "", err
		}
		return scope, g.ID, nil
	default:
		if scopeRef == "" {
			id, err := c.orgID(ctx, cl)
			return scope, id, err
		}
		o, err := c.resolveOrg(ctx, cl, scopeRef)
		if err != nil {
			return "", "", err
		}
		return scope, o.ID, nil
	}
}

// checkRole validates --role early (a usage error, not a server round trip).
func checkRole(role string) error {
	switch role {
	case client.RoleOwner, client.RoleManager, client.RoleViewer:
		return nil
	}
	return usagef("--role %q: use owner, manager or viewer", role)
}

// changed returns a pointer to the flag's value when it was given.
func changedString(cmd *cobra.Command, name string, v string) *string {
	if flagChanged(cmd.Flags(), name) {
		return &v
	}
	return nil
}

func changedInt(cmd *cobra.Command, name string, v int) *int {
	if flagChanged(cmd.Flags(), name) {
		return &v
	}
	return nil
}

func changedBool(cmd *cobra.Command, name string, v bool) *bool {
	if flagChanged(cmd.Flags(), name) {
		return &v
	}
	return nil
}

// needChange refuses an update without any field to change.
func needChange(cmd *cobra.Command, names ...string) error {
	for _, n := range names {
		if flagChanged(cmd.Flags(), n) {
			return nil
		}
	}
	return usagef("nothing to change: give at least one of --%s", strings.Join(names, ", --"))
}
