package store

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/vigil-oss/vigil/internal/domain"
)

func TestAgents(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	tokA, tokB := []byte("sha256-of-token-a"), []byte("sha256-of-token-b")
	carol := Agent{ID: "carol", Name: "Carol", Email: "carol@host.test", Role: domain.RoleSenior, SlackUserID: "U123"}
	if err := s.CreateAgent(ctx, carol, tokA); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateAgent(ctx, Agent{ID: "dave", Name: "Dave", Team: "Ops", Role: domain.RoleAdmin}, nil); err != nil {
		t.Fatal(err)
	}

	got, err := s.AgentByTokenHash(ctx, tokA)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != "carol" || got.Name != "Carol" || got.Email != "carol@host.test" || got.Team != "Support" ||
		got.Role != domain.RoleSenior || got.SlackUserID != "U123" || got.Disabled || got.CreatedAt.IsZero() {
		t.Fatalf("AgentByTokenHash = %+v", got)
	}
	if got, err := s.AgentBySlackUser(ctx, "U123"); err != nil || got.ID != "carol" {
		t.Fatalf("AgentBySlackUser = %+v, %v", got, err)
	}
	if got, err := s.Agent(ctx, "dave"); err != nil || got.Team != "Ops" || got.Role != domain.RoleAdmin || got.SlackUserID != "" {
		t.Fatalf("Agent(dave) = %+v, %v", got, err)
	}

	notFound := []struct {
		name string
		call func() error
	}{
		{"unknown token", func() error { _, err := s.AgentByTokenHash(ctx, tokB); return err }},
		{"nil token", func() error { _, err := s.AgentByTokenHash(ctx, nil); return err }},
		{"unknown Slack user", func() error { _, err := s.AgentBySlackUser(ctx, "U999"); return err }},
		{"empty Slack user", func() error { _, err := s.AgentBySlackUser(ctx, ""); return err }},
		{"unknown id", func() error { _, err := s.Agent(ctx, "eve"); return err }},
		{"role of unknown", func() error { return s.SetAgentRole(ctx, "eve", domain.RoleAgent) }},
		{"token of unknown", func() error { return s.SetAgentToken(ctx, "eve", tokB) }},
		{"disable unknown", func() error { return s.DisableAgent(ctx, "eve", t0) }},
	}
	for _, tt := range notFound {
		if err := tt.call(); !errors.Is(err, ErrNotFound) {
			t.Errorf("%s: %v, want ErrNotFound", tt.name, err)
		}
	}

	conflicts := []struct {
		name  string
		agent Agent
		tok   []byte
	}{
		{"same id", Agent{ID: "carol", Name: "Other", Role: domain.RoleAgent}, nil},
		{"same Slack user", Agent{ID: "erin", Name: "Erin", Role: domain.RoleAgent, SlackUserID: "U123"}, nil},
		{"same token hash", Agent{ID: "erin", Name: "Erin", Role: domain.RoleAgent}, tokA},
	}
	for _, tt := range conflicts {
		if err := s.CreateAgent(ctx, tt.agent, tt.tok); !errors.Is(err, ErrConflict) {
			t.Errorf("%s: %v, want ErrConflict", tt.name, err)
		}
	}
	if err := s.CreateAgent(ctx, Agent{ID: "erin", Name: "Erin", Role: "boss"}, nil); err == nil || errors.Is(err, ErrConflict) {
		t.Errorf("unknown role: %v, want a validation error", err)
	}
	if err := s.SetAgentRole(ctx, "dave", "boss"); err == nil {
		t.Error("SetAgentRole accepted an unknown role")
	}

	// Rotating the token: the old hash stops working, the new one works.
	if err := s.SetAgentToken(ctx, "carol", tokB); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AgentByTokenHash(ctx, tokA); !errors.Is(err, ErrNotFound) {
		t.Fatalf("old token after rotation: %v, want ErrNotFound", err)
	}
	if got, err := s.AgentByTokenHash(ctx, tokB); err != nil || got.ID != "carol" {
		t.Fatalf("new token: %+v, %v", got, err)
	}
	if err := s.SetAgentToken(ctx, "dave", tokB); !errors.Is(err, ErrConflict) {
		t.Fatalf("token already held by another agent: %v, want ErrConflict", err)
	}
	if err := s.SetAgentRole(ctx, "carol", domain.RoleAgent); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Agent(ctx, "carol"); got.Role != domain.RoleAgent {
		t.Fatalf("role after SetAgentRole = %s", got.Role)
	}

	// Disabled agents resolve by id only.
	if err := s.DisableAgent(ctx, "carol", t0); err != nil {
		t.Fatal(err)
	}
	if err := s.DisableAgent(ctx, "carol", t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AgentByTokenHash(ctx, tokB); !errors.Is(err, ErrNotFound) {
		t.Fatalf("disabled agent by token: %v, want ErrNotFound", err)
	}
	if _, err := s.AgentBySlackUser(ctx, "U123"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("disabled agent by Slack user: %v, want ErrNotFound", err)
	}
	if got, err := s.Agent(ctx, "carol"); err != nil || !got.Disabled {
		t.Fatalf("Agent(disabled) = %+v, %v", got, err)
	}
	var disabledAt time.Time
	if err := s.DB().QueryRow("SELECT disabled_at FROM agents WHERE id = 'carol'").Scan(&disabledAt); err != nil || !disabledAt.Equal(t0) {
		t.Fatalf("disabled_at = %v, %v; want the first disable time %v", disabledAt, err, t0)
	}

	list, err := s.ListAgents(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].ID != "carol" || !list[0].Disabled || list[1].ID != "dave" || list[1].Disabled {
		t.Fatalf("ListAgents = %+v", list)
	}
}
