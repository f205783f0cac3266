package slackstandin

import (
	"encoding/json"
	"fmt"
	"io"
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

// ParseAgents reads a JSON list of Vigil agents, as deploy/seed/agents.json
// holds them: [{"id":"ag_bob","role":"senior","slack_user_id":"U0BOB",…},…].
// Agents without a Slack user are skipped: nobody can click as them.
func ParseAgents(r io.Reader) ([]Agent, error) {
	var list []struct {
		ID          string `json:"id"`
		Role        string `json:"role"`
		SlackUserID string `json:"slack_user_id"`
	}
	if err := json.NewDecoder(r).Decode(&list); err != nil {
		return nil, fmt.Errorf("agents: want a JSON list of {id, role, slack_user_id}: %w", err)
	}
	var out []Agent
	seen := map[string]bool{}
	for _, a := range list {
		if a.SlackUserID == "" {
			continue
		}
		if a.ID == "" || !userIDPattern.MatchString(a.SlackUserID) {
			return nil, fmt.Errorf("agents: agent %q with Slack user %q: want an id and a Slack user id (U…)", a.ID, a.SlackUserID)
		}
		if seen[a.SlackUserID] {
			return nil, fmt.Errorf("agents: Slack user %s belongs to two agents", a.SlackUserID)
		}
		seen[a.SlackUserID] = true
		out = append(out, Agent{ID: a.ID, Role: a.Role, SlackUserID: a.SlackUserID})
	}
	return out, nil
}
