package main

import (
	"context"
	"fmt"
	"time"

	"github.com/vigil-oss/vigil/internal/cliclient"
	"github.com/vigil-oss/vigil/internal/domain"
	"github.com/vigil-oss/vigil/internal/pinhash"
)

const (
	// loadPIN is every load customer's support PIN, hashed with the
	// production parameters so that the PIN check costs what it costs.
	loadPIN = "739218"
	// perCustomer requests share a customer (each adds its own address).
	perCustomer = 100
	// perAgent opens per requester keep each under the API's open limit
	// (burst 10 per agent).
	perAgent = 8
	// approverSlackID is the senior who clicks: a member of the Slack
	// stand-in's default workspace.
	approverSlackID = "U0BOB"
)

// seeded is what the driver acts with.
type seeded struct {
	customers []string
	// agents are the requesters' API clients.
	agents []*cliclient.Client
}

// customerOf and agentOf spread request i over the customers and agents.
func (s *seeded) customerOf(i int) string         { return s.customers[i/perCustomer] }
func (s *seeded) agentOf(i int) *cliclient.Client { return s.agents[i%len(s.agents)] }

// seed imports enough customers and requesters for n requests, and the
// senior who approves them, through the admin API.
func seed(ctx context.Context, webURL, adminURL, bootstrapToken, prefix string, n int) (*seeded, error) {
	// The bootstrap token creates the first admin only; that admin, by its
	// own token, does the rest, as on a new install.
	boot, err := cliclient.New(adminURL, bootstrapToken)
	if err != nil {
		return nil, err
	}
	first, err := boot.CreateAgent(ctx, cliclient.NewAgent{ID: "ag_" + prefix + "_admin", Name: "Load Admin", Email: prefix + "-admin@vigil.example",
		Team: "Operations", Role: domain.RoleAdmin})
	if err != nil {
		return nil, fmt.Errorf("create the first admin with the bootstrap token: %w", err)
	}
	admin, err := cliclient.New(adminURL, first.Token)
	if err != nil {
		return nil, err
	}
	hash, err := pinhash.Hash(loadPIN, pinhash.DefaultParams())
	if err != nil {
		return nil, err
	}
	old := time.Now().Add(-30 * 24 * time.Hour).UTC()
	s := &seeded{}
	for i := 0; i*perCustomer < n; i++ {
		id := fmt.Sprintf("C-%s%04d", prefix, i)
		if err := admin.PutCustomer(ctx, id, cliclient.Customer{
			Name: fmt.Sprintf("Load Customer %d", i), PrimaryEmail: fmt.Sprintf("owner%d@%s.load.example", i, prefix), PINHash: hash,
			Contacts: []cliclient.Contact{{Email: fmt.Sprintf("ops%d@%s.load.example", i, prefix), AddedAt: old, VerifiedAt: old}},
		}); err != nil {
			return nil, fmt.Errorf("import customer %s: %w", id, err)
		}
		s.customers = append(s.customers, id)
	}
	if _, err := admin.CreateAgent(ctx, cliclient.NewAgent{ID: "ag_" + prefix + "_senior", Name: "Load Senior", Email: prefix + "-senior@vigil.example",
		Team: "Support", Role: domain.RoleSenior, SlackUserID: approverSlackID}); err != nil {
		return nil, fmt.Errorf("create the senior: %w", err)
	}
	for i := 0; i*perAgent < n; i++ {
		id := fmt.Sprintf("ag_%s_%d", prefix, i)
		tok, err := admin.CreateAgent(ctx, cliclient.NewAgent{ID: id, Name: fmt.Sprintf("Load Agent %d", i), Email: id + "@vigil.example",
			Team: "Support", Role: domain.RoleAgent})
		if err != nil {
			return nil, fmt.Errorf("create agent %s: %w", id, err)
		}
		c, err := cliclient.New(webURL, tok.Token)
		if err != nil {
			return nil, err
		}
		s.agents = append(s.agents, c)
	}
	return s, nil
}
