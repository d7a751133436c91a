package policy

import (
	"encoding/json"
	"testing"

	"github.com/trellis-sdwan/trellis/manage/store"
	"github.com/trellis-sdwan/trellis/wire/devproto"
)

// FuzzParseCatalog: any document is refused with an error or gives a
// catalogue whose applications all have rules and unique ids.
func FuzzParseCatalog(f *testing.F) {
	f.Add(builtinCatalog)
	f.Add([]byte(`{"version":"1","applications":[{"id":"x","name":"X","category":"c","service_class":"prime","importance":"low","rules":[{"protocol":"tcp","ports":["1-2"]}]}]}`))
	f.Add([]byte(`{"version":"1","applications":[{"id":"x","rules":[{"prefixes":["::/0"]}]}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseCatalog(b)
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for _, a := range c.Apps {
			if len(a.Rules) == 0 || seen[a.ID] {
				t.Fatalf("accepted application %+v", a)
			}
			seen[a.ID] = true
		}
	})
}

// FuzzCheckPathRules: arbitrary rules never panic; accepted ones are
// sorted by unique priorities and valid a second time, unchanged.
func FuzzCheckPathRules(f *testing.F) {
	f.Add([]byte(`[{"priority":1,"match":{"applications":["zoom"]},"labels":["mpls"]},{"priority":2,"block":true}]`))
	f.Add([]byte(`[{"priority":5,"match":{"destinations":["10.0.0.0/8"],"protocol":"tcp","ports":["1-1024","443"]},"labels":["mpls"],"mode":"quality","max_loss_pct":2}]`))
	refs := NewRefs(Merge(Builtin(), nil, nil), []store.PathLabel{{ID: "mpls", Type: store.LabelTunnel}})
	f.Fuzz(func(t *testing.T, b []byte) {
		var rules []devproto.PathRule
		if json.Unmarshal(b, &rules) != nil {
			return
		}
		out, _, err := CheckPathRules(store.PolicyPath, rules, refs)
		if err != nil {
			return
		}
		for i := 1; i < len(out); i++ {
			if out[i].Priority <= out[i-1].Priority {
				t.Fatalf("not sorted by unique priority: %+v", out)
			}
		}
		again, _, err := CheckPathRules(store.PolicyPath, out, refs)
		if err != nil {
			t.Fatalf("canonical rules refused: %v", err)
		}
		a, _ := json.Marshal(out)
		b2, _ := json.Marshal(again)
		if string(a) != string(b2) {
			t.Fatalf("canonical form not stable:\n%s\n%s", a, b2)
		}
	})
}
