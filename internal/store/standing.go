package store

import (
	"context"
	"fmt"
)

// RequestsDependingOn lists the open requests that have not started
// executing and whose gates rest on agentID's standing: those it approved
// and, with opened, those it opened. An admin disabling an agent (opened
// true) or taking away its senior role (opened false) stops them; the
// workflow's own check just before executing catches any this misses (a
// break-glass second approver, a decision not yet recorded here).
func (s *Store) RequestsDependingOn(ctx context.Context, agentID string, opened bool) ([]Request, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+requestColumns+` FROM requests
		WHERE ended_at IS NULL AND status <> 'executing'
		  AND ((approver_id = $1 AND decision = 'approve') OR ($2 AND requester_id = $1))
		ORDER BY created_at, id`, agentID, opened)
	if err != nil {
		return nil, fmt.Errorf("store: requests depending on %s: %w", agentID, err)
	}
	defer rows.Close()
	var out []Request
	for rows.Next() {
		r, err := scanRequest(rows)
		if err != nil {
			return nil, fmt.Errorf("store: requests depending on %s: %w", agentID, err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: requests depending on %s: %w", agentID, err)
	}
	return out, nil
}
