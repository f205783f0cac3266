package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"testing"

	"github.com/lib/pq"

	"github.com/vigil-oss/vigil/internal/domain"
)

// scaleRows is how many requests the scale tests put in the table; one in
// scaleOpenEvery of them is open, the rest ended, as after months of use.
const (
	scaleRows      = 100_000
	scaleOpenEvery = 100
)

// statusLists returns the open and the final statuses, in domain's order.
func statusLists() (open, final []string) {
	for _, s := range domain.Statuses() {
		if s.Final() {
			final = append(final, string(s))
		} else {
			open = append(open, string(s))
		}
	}
	return open, final
}

// fillRequests writes n requests for f's customer straight into the table
// with one INSERT ... SELECT: one in every openEvery is open (cycling
// through the open statuses, each on its own server so the one-open rule
// holds), the others ended in one of the final statuses. Creation times
// are a minute apart; a few share a time, so the id tie-break is exercised.
// It ends with ANALYZE, as autovacuum would after such a load.
func fillRequests(t testing.TB, s *Store, f fixture, n, openEvery int) {
	t.Helper()
	open, final := statusLists()
	_, err := s.db.Exec(`
		INSERT INTO requests (id, workflow_id, action, customer_id, requester_id, server_id, reason, status,
		                      created_at, updated_at, ended_at)
		SELECT 'req_f' || i, 'wf-f' || i, $1, $2, CASE WHEN i % 3 = 0 THEN $6 ELSE $3 END, 'srv_f' || i, 'load',
		       CASE WHEN i % $4 = 0 THEN ($7::text[])[1 + (i / $4) % cardinality($7::text[])]
		            ELSE ($8::text[])[1 + i % cardinality($8::text[])] END,
		       $5::timestamptz + ((i / 2) * interval '1 minute'),
		       $5::timestamptz + ((i / 2) * interval '1 minute') + interval '10 seconds',
		       CASE WHEN i % $4 = 0 THEN NULL ELSE $5::timestamptz + ((i / 2) * interval '1 minute') + interval '10 seconds' END
		FROM generate_series(1, $9) AS i`,
		string(domain.ActionReinstallVPS), f.customer, f.requester, openEvery, t0, f.senior,
		pq.Array(open), pq.Array(final), n)
	if err != nil {
		t.Fatalf("filling requests: %v", err)
	}
	if _, err := s.db.Exec(`ANALYZE requests`); err != nil {
		t.Fatal(err)
	}
}

// planScans explains query and returns the relations it reads with a Seq
// Scan and the indexes it reads.
func planScans(t testing.TB, db *sql.DB, query string, args ...any) (seq, indexes []string) {
	t.Helper()
	var raw []byte
	if err := db.QueryRow(`EXPLAIN (FORMAT JSON) `+query, args...).Scan(&raw); err != nil {
		t.Fatalf("explain: %v", err)
	}
	var plans []struct {
		Plan map[string]any `json:"Plan"`
	}
	if err := json.Unmarshal(raw, &plans); err != nil || len(plans) != 1 {
		t.Fatalf("explain output %s: %v", raw, err)
	}
	var walk func(n map[string]any)
	walk = func(n map[string]any) {
		if n["Node Type"] == "Seq Scan" {
			seq = append(seq, fmt.Sprint(n["Relation Name"]))
		}
		if ix, ok := n["Index Name"].(string); ok {
			indexes = append(indexes, ix)
		}
		kids, _ := n["Plans"].([]any)
		for _, k := range kids {
			if m, ok := k.(map[string]any); ok {
				walk(m)
			}
		}
	}
	walk(plans[0].Plan)
	return seq, indexes
}

// truthByStatus counts the rows per status the slow way, for comparison.
func truthByStatus(t testing.TB, db *sql.DB) map[domain.Status]int {
	t.Helper()
	rows, err := db.Query(`SELECT status, count(*) FROM requests GROUP BY status`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[domain.Status]int{}
	for rows.Next() {
		var st string
		var n int
		if err := rows.Scan(&st, &n); err != nil {
			t.Fatal(err)
		}
		out[domain.Status(st)] = n
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// countsOf is RequestsByStatus as a map.
func countsOf(t testing.TB, s *Store) map[domain.Status]int {
	t.Helper()
	got, err := s.RequestsByStatus(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[domain.Status]int{}
	for _, c := range got {
		if _, dup := out[c.Status]; dup {
			t.Fatalf("status %s counted twice: %+v", c.Status, got)
		}
		out[c.Status] = c.Count
	}
	return out
}

// TestScaleScrapeAndOpenListing fills requests with 100,000 rows, mostly
// ended, and holds the scrape and the open listing to plans that never scan
// the table, and to the answers the plain (scanning) queries give.
func TestScaleScrapeAndOpenListing(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	f := seed(t, s)
	fillRequests(t, s, f, scaleRows, scaleOpenEvery)
	ctx := context.Background()
	senior := Agent{ID: f.senior, Role: domain.RoleSenior}
	agent := Agent{ID: f.requester, Role: domain.RoleAgent}
	role, id := readerArgs(agent)
	srole, sid := readerArgs(senior)

	plans := []struct {
		name  string
		query string
		args  []any
	}{
		{"status counts", requestsByStatusQuery, nil},
		{"open listing", listQuery(true, ""), []any{"", "", 50}},
		{"open listing, one customer", listQuery(true, ""), []any{"", f.customer, 500}},
		{"open listing read by a senior", listQuery(true, " AND "+readRule(4, 5)), []any{"", "", 50, srole, sid}},
		{"open listing read by an agent", listQuery(true, " AND "+readRule(4, 5)), []any{"", "", 50, role, id}},
		{"open listing of one requester", listQuery(true, ""), []any{f.requester, "", 50}},
	}
	// Not just "no Seq Scan": walking requests_created_idx and filtering is
	// no Seq Scan either, and it is what grows with history. Every read of
	// requests goes through the partial index over the open rows.
	for _, p := range plans {
		seq, indexes := planScans(t, s.db, p.query, p.args...)
		if slices.Contains(seq, "requests") {
			t.Errorf("%s: Seq Scan on requests", p.name)
		}
		if !slices.Contains(indexes, "requests_open_created_idx") {
			t.Errorf("%s: plan does not read requests_open_created_idx (reads %v)", p.name, indexes)
		}
		for _, ix := range indexes {
			if ix != "requests_open_created_idx" && ix != "request_ended_counts_pkey" {
				t.Errorf("%s: plan reads index %s, whose size follows every request ever made", p.name, ix)
			}
		}
	}

	// The counts match a full GROUP BY over the rows.
	truth := truthByStatus(t, s.db)
	if got := countsOf(t, s); !mapsEqual(got, truth) {
		t.Errorf("counts %v, table says %v", got, truth)
	}
	var total int
	for _, n := range truth {
		total += n
	}
	if total != scaleRows+1 {
		t.Fatalf("table holds %d rows, want %d", total, scaleRows+1)
	}

	// The open listings match the old status-based filter, row for row.
	_, final := statusLists()
	for _, tc := range []struct {
		name   string
		reader *Agent
		f      ListFilter
		where  string
		args   []any
	}{
		{"all open", nil, ListFilter{OpenOnly: true, Limit: 500}, "", nil},
		{"open of one requester", nil, ListFilter{OpenOnly: true, RequesterID: f.senior, Limit: 500}, " AND requester_id = $2", []any{f.senior}},
		{"open read by an agent", &agent, ListFilter{OpenOnly: true, Limit: 500}, " AND requester_id = $2", []any{f.requester}},
		{"open read by a senior", &senior, ListFilter{OpenOnly: true, Limit: 50}, "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []Request
			var err error
			if tc.reader != nil {
				got, err = s.ListReadable(ctx, *tc.reader, tc.f)
			} else {
				got, err = s.ListRequests(ctx, tc.f)
			}
			if err != nil {
				t.Fatal(err)
			}
			rows, err := s.db.Query(`SELECT id FROM requests WHERE status <> ALL($1)`+tc.where+`
				ORDER BY created_at DESC, id DESC LIMIT `+fmt.Sprint(tc.f.Limit), append([]any{pq.Array(final)}, tc.args...)...)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			var want []string
			for rows.Next() {
				var id string
				if err := rows.Scan(&id); err != nil {
					t.Fatal(err)
				}
				want = append(want, id)
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			if len(want) == 0 {
				t.Fatal("the reference query found no open request: the fill is wrong")
			}
			ids := make([]string, len(got))
			for i, r := range got {
				ids[i] = r.ID
				if r.Status.Final() {
					t.Errorf("open listing returned %s in %s", r.ID, r.Status)
				}
			}
			if !slices.Equal(ids, want) {
				t.Errorf("listed %d ids %v...\nwant %d ids %v...", len(ids), head(ids), len(want), head(want))
			}
		})
	}
}

func head(ids []string) []string { return ids[:min(len(ids), 5)] }

func mapsEqual(a, b map[domain.Status]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestEndedCountsFollowEveryWrite holds the ended counters to the rows
// through every kind of write: the store's own updates, bulk inserts,
// updates and deletes straight in SQL (an operator's), one ended request
// moved between final statuses, and a rolled-back write.
func TestEndedCountsFollowEveryWrite(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	f := seed(t, s)
	ctx := context.Background()
	check := func(step string) {
		t.Helper()
		if got, want := countsOf(t, s), truthByStatus(t, s.db); !mapsEqual(got, want) {
			t.Fatalf("after %s: counts %v, table says %v", step, got, want)
		}
	}
	check("seed")
	fillRequests(t, s, f, 2_000, 10)
	check("bulk insert")
	steps := []struct {
		name string
		run  func() error
	}{
		{"the store ends a request", func() error {
			return s.UpdateRequest(ctx, f.request, RequestUpdate{Status: domain.StatusExecuted}, t0)
		}},
		{"the store ends an open one from the fill", func() error {
			return s.UpdateRequest(ctx, "req_f10", RequestUpdate{Status: domain.StatusCancelled}, t0)
		}},
		{"an update of an ended request that changes nothing", func() error {
			return s.UpdateRequest(ctx, "req_f10", RequestUpdate{Status: domain.StatusCancelled}, t0)
		}},
		{"bulk end in SQL", func() error {
			_, err := s.db.Exec(`UPDATE requests SET status = 'expired', ended_at = now() WHERE ended_at IS NULL AND id LIKE 'req_f1%'`)
			return err
		}},
		{"an ended request moved between final statuses", func() error {
			_, err := s.db.Exec(`UPDATE requests SET status = 'failed' WHERE id = 'req_f11'`)
			return err
		}},
		{"an ended request reopened in SQL", func() error {
			_, err := s.db.Exec(`UPDATE requests SET status = 'cooling', ended_at = NULL WHERE id = 'req_f13'`)
			return err
		}},
		{"open and ended rows deleted", func() error {
			_, err := s.db.Exec(`DELETE FROM requests WHERE id LIKE 'req_f2%'`)
			return err
		}},
		{"a rolled-back bulk end", func() error {
			tx, err := s.db.Begin()
			if err != nil {
				return err
			}
			if _, err := tx.Exec(`UPDATE requests SET status = 'failed', ended_at = now() WHERE ended_at IS NULL`); err != nil {
				return err
			}
			return tx.Rollback()
		}},
	}
	for _, st := range steps {
		if err := st.run(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		check(st.name)
	}
	var negative int
	if err := s.db.QueryRow(`SELECT count(*) FROM request_ended_counts WHERE n < 0`).Scan(&negative); err != nil || negative != 0 {
		t.Fatalf("negative counters: %d, %v", negative, err)
	}
	if got := countsOf(t, s); got[domain.StatusExpired] == 0 || got[domain.StatusFailed] == 0 {
		t.Fatalf("the steps left no expired or failed request: %v", got)
	}
}

// benchStore is a store filled with scaleRows requests, for the benchmarks.
func benchStore(b *testing.B) (*Store, fixture) {
	b.Helper()
	s := newStore(b)
	f := seed(b, s)
	fillRequests(b, s, f, scaleRows, scaleOpenEvery)
	return s, f
}

// BenchmarkListOpen lists the newest 50 open requests out of 100,000 rows
// (1,000 open), as a senior reads them through the API.
func BenchmarkListOpen(b *testing.B) {
	s, f := benchStore(b)
	reader := Agent{ID: f.senior, Role: domain.RoleSenior}
	ctx := context.Background()
	b.ResetTimer()
	for b.Loop() {
		got, err := s.ListReadable(ctx, reader, ListFilter{OpenOnly: true, Limit: 50})
		if err != nil || len(got) != 50 {
			b.Fatalf("%d rows, %v", len(got), err)
		}
	}
}

// BenchmarkStatusCounts runs the metrics scrape's query over 100,000 rows.
func BenchmarkStatusCounts(b *testing.B) {
	s, _ := benchStore(b)
	ctx := context.Background()
	b.ResetTimer()
	for b.Loop() {
		got, err := s.RequestsByStatus(ctx)
		if err != nil || len(got) == 0 {
			b.Fatalf("%v, %v", got, err)
		}
	}
}

// TestMigrationCountsExistingEndedRequests: migration 0006 counts the
// requests that ended before it, so the scrape is right from its first run
// on an existing database, and the triggers carry on from there.
func TestMigrationCountsExistingEndedRequests(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := migratedBefore(t, 6)
	f := seed(t, s)
	fillRequests(t, s, f, 3_000, 7)
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("Migrate over existing requests: %v", err)
	}
	truth := truthByStatus(t, s.db)
	if got := countsOf(t, s); !mapsEqual(got, truth) {
		t.Fatalf("after the migration: counts %v, table says %v", got, truth)
	}
	if err := s.UpdateRequest(ctx, "req_f7", RequestUpdate{Status: domain.StatusWithdrawn}, t0); err != nil {
		t.Fatal(err)
	}
	if got, want := countsOf(t, s), truthByStatus(t, s.db); !mapsEqual(got, want) || got[domain.StatusWithdrawn] != truth[domain.StatusWithdrawn]+1 {
		t.Fatalf("after ending one: counts %v, table says %v (withdrawn was %d)", got, want, truth[domain.StatusWithdrawn])
	}
}
