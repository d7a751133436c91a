package ctl

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/trellis-sdwan/trellis/client"
)

func TestResolve(t *testing.T) {
	items := []client.PathLabel{
		{ID: "id-1", Name: "MPLS"},
		{ID: "id-2", Name: "mpls"},
		{ID: "id-3", Name: "LTE"},
		{ID: "id-4", Name: "Dup"},
		{ID: "id-5", Name: "Dup"},
		{ID: "id-6", Name: "id-1"}, // a name that looks like another's id
	}
	get := func(ctx context.Context, id string) (*client.PathLabel, error) {
		for _, it := range items {
			if it.ID == id && id != "id-3" { // id-3 is only found through the list
				return &it, nil
			}
		}
		return nil, &client.Error{Status: 404, Code: client.CodeNotFound, Message: "not found"}
	}
	list := func(ctx context.Context, p client.ListParams) (*client.Page[client.PathLabel], error) {
		end := min(p.Offset+p.Limit, len(items))
		return &client.Page[client.PathLabel]{Items: items[p.Offset:end], Total: len(items), Limit: p.Limit, Offset: p.Offset}, nil
	}
	tests := []struct {
		ref, wantID, wantErr string
	}{
		{ref: "id-1", wantID: "id-1"},  // by id, through get
		{ref: "id-3", wantID: "id-3"},  // by id, through the list
		{ref: "MPLS", wantID: "id-1"},  // exact name wins over a case-folded one
		{ref: "mpls", wantID: "id-2"},  // exact
		{ref: "lte", wantID: "id-3"},   // case-insensitive when unique
		{ref: " LTE ", wantID: "id-3"}, // trimmed
		{ref: "Dup", wantErr: "2 path labels are named \"Dup\": use one of the ids id-4, id-5"},
		{ref: "nope", wantErr: `no path label with id or name "nope"`},
		{ref: "", wantErr: "empty path label"},
	}
	for _, tt := range tests {
		got, err := resolve(context.Background(), "path label", tt.ref, get, list,
			func(l client.PathLabel) string { return l.ID }, func(l client.PathLabel) string { return l.Name })
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("resolve(%q) = %v, %v; want error %q", tt.ref, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got.ID != tt.wantID {
			t.Errorf("resolve(%q) = %v, %v; want %s", tt.ref, got, err, tt.wantID)
		}
	}

	// Other errors of get are not hidden by a name search.
	boom := errors.New("connection refused")
	_, err := resolve(context.Background(), "path label", "x",
		func(ctx context.Context, id string) (*client.PathLabel, error) { return nil, boom }, list,
		func(l client.PathLabel) string { return l.ID }, func(l client.PathLabel) string { return l.Name })
	if !errors.Is(err, boom) {
		t.Errorf("resolve with a failing get: %v", err)
	}
}
