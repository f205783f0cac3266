package domain

import "testing"

// TestStatuses: every status once, the open ones (in gate order) before the
// end states, so dashboards and gauges list them the way a request moves.
func TestStatuses(t *testing.T) {
	all := Statuses()
	open := []Status{StatusPINCheck, StatusAwaitingApproval, StatusNotifying, StatusCooling, StatusExecuting}
	if len(all) != 13 {
		t.Fatalf("%d statuses, want 13: %v", len(all), all)
	}
	seen := map[Status]bool{}
	for i, s := range all {
		if seen[s] {
			t.Fatalf("%s listed twice", s)
		}
		seen[s] = true
		if want := i >= len(open); s.Final() != want {
			t.Errorf("%s at %d: Final() = %v, want %v", s, i, s.Final(), want)
		}
		if i < len(open) && s != open[i] {
			t.Errorf("position %d is %s, want %s (gate order)", i, s, open[i])
		}
	}
}
