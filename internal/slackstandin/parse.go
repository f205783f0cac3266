package slackstandin

import (
	"fmt"
	"strings"
)

// ParseUsers reads "U0ALICE:alice:Alice Moreau,U0BOB:bob:Bob Lindqvist".
func ParseUsers(s string) ([]User, error) {
	var out []User
	seen := map[string]bool{}
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		parts := strings.SplitN(item, ":", 3)
		if len(parts) != 3 {
			return nil, fmt.Errorf("user %q: want ID:name:Real Name", item)
		}
		u := User{ID: strings.TrimSpace(parts[0]), Name: strings.TrimSpace(parts[1]), RealName: strings.TrimSpace(parts[2])}
		if !userIDPattern.MatchString(u.ID) {
			return nil, fmt.Errorf("user %q: id %q does not look like a Slack user id (U…)", item, u.ID)
		}
		if u.Name == "" {
			return nil, fmt.Errorf("user %q: empty name", item)
		}
		if seen[u.ID] {
			return nil, fmt.Errorf("user %s is listed twice", u.ID)
		}
		seen[u.ID] = true
		out = append(out, u)
	}
	return out, nil
}

// ParseGroups reads "S0SENIORS:U0BOB+U0CAROL,S0OPS:U0ALICE".
func ParseGroups(s string) (map[string][]string, error) {
	out := map[string][]string{}
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		id, members, ok := strings.Cut(item, ":")
		id = strings.TrimSpace(id)
		if !ok || !groupIDPattern.MatchString(id) {
			return nil, fmt.Errorf("group %q: want S…:U…+U…", item)
		}
		if _, dup := out[id]; dup {
			return nil, fmt.Errorf("group %s is listed twice", id)
		}
		list := []string{}
		for m := range strings.SplitSeq(members, "+") {
			m = strings.TrimSpace(m)
			if m == "" {
				continue
			}
			if !userIDPattern.MatchString(m) {
				return nil, fmt.Errorf("group %s: member %q does not look like a Slack user id (U…)", id, m)
			}
			list = append(list, m)
		}
		out[id] = list
	}
	return out, nil
}
