package store

import (
	"context"
	"fmt"
	"time"

	"github.com/vigil-oss/vigil/internal/domain"
)

// StatusCount is how many requests are in one status, and since when the
// one that has been in it longest has not moved.
type StatusCount struct {
	Status      domain.Status
	Count       int
	OldestSince time.Time
}

// RequestsByStatus counts the requests in each status that has any.
func (s *Store) RequestsByStatus(ctx context.Context) ([]StatusCount, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT status, count(*), min(updated_at) FROM requests GROUP BY status ORDER BY status`)
	if err != nil {
		return nil, fmt.Errorf("store: requests by status: %w", err)
	}
	defer rows.Close()
	var out []StatusCount
	for rows.Next() {
		var c StatusCount
		var st string
		if err := rows.Scan(&st, &c.Count, &c.OldestSince); err != nil {
			return nil, fmt.Errorf("store: requests by status: %w", err)
		}
		c.Status = domain.Status(st)
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: requests by status: %w", err)
	}
	return out, nil
}
