package slackstandin

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"unicode/utf8"
)

// Block Kit limits Slack enforces on messages; a message breaking one is
// refused with invalid_blocks, so Vigil's messages must respect them here too.
const (
	maxBlocks          = 50
	maxHeaderRunes     = 150
	maxSectionRunes    = 3000
	maxFieldRunes      = 2000
	maxFields          = 10
	maxContextElements = 10
	maxActionElements  = 25
	maxButtonTextRunes = 75
	maxActionIDRunes   = 255
	maxBlockIDRunes    = 255
	maxValueRunes      = 2000
	maxConfirmTitle    = 100
	maxConfirmText     = 300
	maxConfirmButton   = 30
)

// normaliseBlocks checks a blocks array against Slack's rules and gives every
// block without a block_id one, as Slack does. An empty array yields nil.
func normaliseBlocks(raw []byte) (json.RawMessage, []string) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var blocks []map[string]any
	if err := dec.Decode(&blocks); err != nil {
		return nil, []string{"blocks must be a JSON array of objects: " + err.Error()}
	}
	if len(blocks) == 0 {
		return nil, nil
	}
	var problems []string
	bad := func(ptr, format string, args ...any) {
		problems = append(problems, fmt.Sprintf(format, args...)+" [json-pointer:"+ptr+"]")
	}
	if len(blocks) > maxBlocks {
		bad("/blocks", "no more than %d items allowed", maxBlocks)
	}
	seenBlockIDs := map[string]bool{}
	for i, b := range blocks {
		ptr := fmt.Sprintf("/blocks/%d", i)
		if b == nil {
			bad(ptr, "must be an object")
			continue
		}
		typ, _ := b["type"].(string)
		if id, ok := b["block_id"].(string); ok {
			if id == "" || utf8.RuneCountInString(id) > maxBlockIDRunes {
				bad(ptr+"/block_id", "must be 1 to %d characters", maxBlockIDRunes)
			}
			if seenBlockIDs[id] {
				bad(ptr+"/block_id", "duplicate block_id %q", id)
			}
			seenBlockIDs[id] = true
		} else if _, present := b["block_id"]; present {
			bad(ptr+"/block_id", "must be a string")
		}
		switch typ {
		case "":
			bad(ptr+"/type", "missing block type")
		case "header":
			checkText(bad, ptr+"/text", b["text"], maxHeaderRunes, "plain_text")
		case "section":
			_, hasText := b["text"]
			fields, hasFields := b["fields"].([]any)
			if !hasText && !hasFields {
				bad(ptr, "must provide text or fields")
			}
			if hasText {
				checkText(bad, ptr+"/text", b["text"], maxSectionRunes, "plain_text", "mrkdwn")
			}
			if hasFields {
				if len(fields) == 0 || len(fields) > maxFields {
					bad(ptr+"/fields", "must have 1 to %d items", maxFields)
				}
				for j, f := range fields {
					checkText(bad, fmt.Sprintf("%s/fields/%d", ptr, j), f, maxFieldRunes, "plain_text", "mrkdwn")
				}
			}
		case "context":
			elems, _ := b["elements"].([]any)
			if len(elems) == 0 || len(elems) > maxContextElements {
				bad(ptr+"/elements", "must have 1 to %d items", maxContextElements)
			}
			for j, e := range elems {
				if m, ok := e.(map[string]any); ok && m["type"] != "image" {
					checkText(bad, fmt.Sprintf("%s/elements/%d", ptr, j), e, maxSectionRunes, "plain_text", "mrkdwn")
				}
			}
		case "actions":
			elems, _ := b["elements"].([]any)
			if len(elems) == 0 || len(elems) > maxActionElements {
				bad(ptr+"/elements", "must have 1 to %d items", maxActionElements)
			}
			seenActions := map[string]bool{}
			for j, e := range elems {
				checkElement(bad, fmt.Sprintf("%s/elements/%d", ptr, j), e, seenActions)
			}
		}
	}
	if len(problems) > 0 {
		return nil, problems
	}
	for _, b := range blocks {
		if _, ok := b["block_id"]; !ok {
			id := newBlockID()
			for seenBlockIDs[id] {
				id = newBlockID()
			}
			seenBlockIDs[id] = true
			b["block_id"] = id
		}
	}
	// Keep <, > and & as they are: they are Slack markup, and Slack returns them unescaped.
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(blocks); err != nil {
		return nil, []string{"blocks cannot be encoded: " + err.Error()}
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

func checkElement(bad func(string, string, ...any), ptr string, e any, seen map[string]bool) {
	m, ok := e.(map[string]any)
	if !ok {
		bad(ptr, "must be an object")
		return
	}
	if id, ok := m["action_id"].(string); ok {
		if id == "" || utf8.RuneCountInString(id) > maxActionIDRunes {
			bad(ptr+"/action_id", "must be 1 to %d characters", maxActionIDRunes)
		}
		if seen[id] {
			bad(ptr+"/action_id", "duplicate action_id %q", id)
		}
		seen[id] = true
	}
	if m["type"] != "button" {
		return
	}
	checkText(bad, ptr+"/text", m["text"], maxButtonTextRunes, "plain_text")
	if v, ok := m["value"].(string); ok && utf8.RuneCountInString(v) > maxValueRunes {
		bad(ptr+"/value", "must be less than %d characters", maxValueRunes+1)
	}
	if st, ok := m["style"].(string); ok && st != "primary" && st != "danger" {
		bad(ptr+"/style", "must be primary or danger")
	}
	if c, ok := m["confirm"]; ok {
		cm, ok := c.(map[string]any)
		if !ok {
			bad(ptr+"/confirm", "must be an object")
			return
		}
		checkText(bad, ptr+"/confirm/title", cm["title"], maxConfirmTitle, "plain_text")
		checkText(bad, ptr+"/confirm/text", cm["text"], maxConfirmText, "plain_text", "mrkdwn")
		checkText(bad, ptr+"/confirm/confirm", cm["confirm"], maxConfirmButton, "plain_text")
		if _, ok := cm["deny"]; ok {
			checkText(bad, ptr+"/confirm/deny", cm["deny"], maxConfirmButton, "plain_text")
		}
		if st, ok := cm["style"].(string); ok && st != "primary" && st != "danger" {
			bad(ptr+"/confirm/style", "must be primary or danger")
		}
	}
}

// checkText checks a text object: its type is one of types and its text is
// 1..max characters.
func checkText(bad func(string, string, ...any), ptr string, v any, limit int, types ...string) {
	if v == nil {
		bad(ptr, "missing required field")
		return
	}
	m, ok := v.(map[string]any)
	if !ok {
		bad(ptr, "must be a text object")
		return
	}
	typ, _ := m["type"].(string)
	okType := false
	for _, t := range types {
		okType = okType || typ == t
	}
	if !okType {
		bad(ptr+"/type", "must be one of %v", types)
	}
	text, _ := m["text"].(string)
	n := utf8.RuneCountInString(text)
	if n == 0 {
		bad(ptr+"/text", "must be at least 1 character")
	}
	if n > limit {
		bad(ptr+"/text", "must be less than %d characters", limit+1)
	}
}

// newBlockID makes a short random id like the ones Slack assigns.
func newBlockID() string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	var b [5]byte
	_, _ = rand.Read(b[:])
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b[:])
}
