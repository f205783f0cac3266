package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/vigil-oss/vigil/internal/domain"
)

// StatusCount is how many requests are in one status, and, for an open
// status, since when the one that has been in it longest has not moved (zero
// for the final statuses, which are counted without reading their rows).
type StatusCount struct {
	Status      domain.Status
	Count       int
	OldestSince time.Time
}

// RequestsByStatus counts the requests in each status that has any. Its cost
// follows the open requests, not history: the open statuses are counted from
// the open rows (the partial index of migration 0006), the final ones read
// from request_ended_counts, which triggers keep in step with the rows.
func (s *Store) RequestsByStatus(ctx context.Context) ([]StatusCount, error) {
	rows, err := s.db.QueryContext(ctx, requestsByStatusQuery)
	if err != nil {
		return nil, fmt.Errorf("store: requests by status: %w", err)
	}
	defer rows.Close()
	var out []StatusCount
	for rows.Next() {
		var c StatusCount
		var st string
		var since sql.NullTime
		if err := rows.Scan(&st, &c.Count, &since); err != nil {
			return nil, fmt.Errorf("store: requests by status: %w", err)
		}
		c.Status = domain.Status(st)
		c.OldestSince = since.Time
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: requests by status: %w", err)
	}
	return out, nil
}

// requestsByStatusQuery is RequestsByStatus's query (the scale test explains it).
const requestsByStatusQuery = `
	SELECT status, count(*), min(updated_at) FROM requests WHERE ended_at IS NULL GROUP BY status
	UNION ALL
	SELECT status, n, NULL FROM request_ended_counts WHERE n > 0
	ORDER BY status`
