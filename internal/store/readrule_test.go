package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/vigil-oss/vigil/internal/domain"
)

// TestReadRuleInQuery fills the table with many requests from several
// agents and checks, for each kind of reader, that ListReadable and
// ReadableRequest show exactly what the rule allows. A small limit must still
// fill up with the reader's own rows: the rule is in the query, not applied
// to a page fetched first.
func TestReadRuleInQuery(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	f := seed(t, s) // req_1 by alice (agent); bob is a senior
	readers := map[string]Agent{
		"agent":             {ID: f.requester, Role: domain.RoleAgent},
		"other":             {ID: "zoe", Role: domain.RoleAgent},
		"senior":            {ID: f.senior, Role: domain.RoleSenior},
		"security":          {ID: "sec1", Role: domain.RoleSecurity},
		"disabled security": {ID: "sec2", Role: domain.RoleSecurity, Disabled: true},
		"disabled":          {ID: "olga", Role: domain.RoleSenior, Disabled: true},
		"unnamed":           {Role: domain.RoleSenior},
	}
	for _, a := range []Agent{{ID: "zoe", Name: "Zoe", Role: domain.RoleAgent}, {ID: "olga", Name: "Olga", Role: domain.RoleSenior, Disabled: true}} {
		if err := s.CreateAgent(ctx, a, nil); err != nil {
			t.Fatal(err)
		}
	}
	owners := []string{f.requester, "zoe", f.senior, "olga"}
	byOwner := map[string][]string{f.requester: {f.request}}
	all := []string{f.request}
	const n = 400
	for i := range n {
		id := fmt.Sprintf("req_m%04d", i)
		owner := owners[(i*7)%len(owners)] // interleaved, so no owner's rows sit together
		if err := s.CreateRequest(ctx, Request{ID: id, WorkflowID: "wf-" + id, Action: domain.ActionReinstallVPS,
			CustomerID: f.customer, RequesterID: owner, ServerID: "srv_" + id, Reason: "reason " + id,
			CreatedAt: t0.Add(time.Duration(i+1) * time.Minute)}); err != nil {
			t.Fatal(err)
		}
		byOwner[owner] = append(byOwner[owner], id)
		all = append(all, id)
	}
	newestFirst := func(ids []string) []string {
		out := slices.Clone(ids)
		slices.Reverse(out)
		return out
	}
	tests := []struct {
		reader string
		want   []string // oldest first
	}{
		{"agent", byOwner[f.requester]},
		{"other", byOwner["zoe"]},
		{"senior", all},
		{"security", all}, // it exports every request's events too
		{"disabled security", nil},
		{"disabled", nil},
		{"unnamed", nil},
	}
	for _, tt := range tests {
		t.Run(tt.reader, func(t *testing.T) {
			r := readers[tt.reader]
			want := newestFirst(tt.want)
			for _, limit := range []int{maxListLimit, 10} {
				got, err := s.ListReadable(ctx, r, ListFilter{Limit: limit})
				if err != nil {
					t.Fatal(err)
				}
				ids := make([]string, 0, len(got))
				for _, g := range got {
					ids = append(ids, g.ID)
				}
				w := want[:min(limit, len(want))]
				if !slices.Equal(ids, w) {
					t.Errorf("limit %d: %d rows %v…, want %d %v…", limit, len(ids), ids[:min(3, len(ids))], len(w), w[:min(3, len(w))])
				}
			}
			mayRead := map[string]bool{}
			for _, id := range tt.want {
				mayRead[id] = true
			}
			for _, id := range append(all, "req_doesnotexist") {
				got, err := s.ReadableRequest(ctx, r, id)
				switch {
				case mayRead[id] && (err != nil || got.ID != id):
					t.Fatalf("ReadableRequest(%s) = %v, %v; want the row", id, got.ID, err)
				case !mayRead[id] && !errors.Is(err, ErrNotFound):
					t.Fatalf("ReadableRequest(%s) = %v, %v; want ErrNotFound", id, got.ID, err)
				}
			}
		})
	}
}
