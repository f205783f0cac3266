package mailcatcher

import (
	"fmt"
	"time"
)

// stateVersion is the layout of the state file; a file of another version is refused.
const stateVersion = 1

// snapshotFile is what the state file holds. Refusal settings are not kept:
// they are faults a test injects into one run.
type snapshotFile struct {
	Version  int            `json:"version"`
	NextID   int            `json:"next_id"`
	Messages []savedMessage `json:"messages"`
}

type savedMessage struct {
	ID         int       `json:"id"`
	From       string    `json:"from"`
	To         []string  `json:"to"`
	Subject    string    `json:"subject"`
	Raw        []byte    `json:"raw"` // base64 in the file: a message is bytes, not always UTF-8
	ReceivedAt time.Time `json:"received_at"`
}

func (c *Catcher) snapshot() snapshotFile {
	c.mu.Lock()
	defer c.mu.Unlock()
	snap := snapshotFile{Version: stateVersion, NextID: c.nextID, Messages: make([]savedMessage, 0, len(c.messages))}
	for _, m := range c.messages {
		snap.Messages = append(snap.Messages, savedMessage(m))
	}
	return snap
}

// save writes the state file, when the catcher has one. A failed write is
// logged and the delivery still succeeds: the message is kept in memory,
// only a restart would lose it.
func (c *Catcher) save() {
	if c.state == nil {
		return
	}
	c.saveMu.Lock()
	defer c.saveMu.Unlock()
	if err := c.state.Save(c.snapshot()); err != nil {
		c.logger.Error("state not saved: a restart would lose the latest mail", "err", err)
	}
}

// load fills a new catcher from its state file, checking the ids hang together.
func (c *Catcher) load() error {
	var snap snapshotFile
	found, err := c.state.Load(&snap)
	if err != nil || !found {
		return err
	}
	if snap.Version != stateVersion {
		return c.state.Corrupt(fmt.Errorf("version %d, this catcher reads version %d", snap.Version, stateVersion))
	}
	last := 0
	for _, m := range snap.Messages {
		if m.ID <= last {
			return c.state.Corrupt(fmt.Errorf("message ids are not increasing (%d after %d)", m.ID, last))
		}
		last = m.ID
	}
	if snap.NextID <= last {
		return c.state.Corrupt(fmt.Errorf("next_id %d is not after the last message id %d", snap.NextID, last))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.nextID = snap.NextID
	for _, m := range snap.Messages {
		c.messages = append(c.messages, Message(m))
	}
	c.logger.Info("state loaded", "file", c.state.Path(), "messages", len(c.messages))
	return nil
}
