package slackstandin

import (
	"html"
	"html/template"
	"net/url"
	"strings"
)

// mrkdwn renders the subset of Slack's mrkdwn Vigil's messages use as HTML:
// *bold*, _italic_, ~strike~, `code`, ```preformatted```, "> " quotes (and
// ">>>" for the rest of the text), <url|links>, <@U…> mentions, channel and
// usergroup references, <!date^…|fallback>. Every piece of the text is
// HTML-escaped on its way out; the only tags in the result are the ones
// written here, and links go to http, https and mailto addresses only.
func (s *Server) mrkdwn(text string) template.HTML {
	var b strings.Builder
	parts := strings.Split(text, "```")
	for i, part := range parts {
		inside := i%2 == 1
		if inside && i == len(parts)-1 { // an unclosed fence is text
			s.writeLines(&b, "```"+part)
			continue
		}
		if i > 0 {
			part = strings.TrimPrefix(part, "\n") // the fence ends the line
		}
		if i < len(parts)-1 {
			part = strings.TrimSuffix(part, "\n")
		}
		if inside {
			b.WriteString(`<pre class="code">`)
			b.WriteString(html.EscapeString(unescapeSlack(part)))
			b.WriteString("</pre>")
			continue
		}
		s.writeLines(&b, part)
	}
	return template.HTML(b.String()) // built from escaped pieces only
}

// writeLines renders lines of text outside code fences, grouping quoted lines
// into one blockquote. The page shows text with white-space: pre-wrap, so
// newlines stay newlines.
func (s *Server) writeLines(b *strings.Builder, text string) {
	if text == "" {
		return
	}
	lines := strings.Split(text, "\n")
	var plain, quoted []string
	flush := func() {
		if len(plain) > 0 {
			b.WriteString(strings.Join(plain, "\n"))
			plain = nil
		}
		if len(quoted) > 0 {
			b.WriteString("<blockquote>" + strings.Join(quoted, "\n") + "</blockquote>")
			quoted = nil
		}
	}
	for i, line := range lines {
		if rest, ok := cutQuote(line, ">>>"); ok { // quotes everything after it
			flush()
			all := append([]string{rest}, lines[i+1:]...)
			for j := range all {
				all[j] = s.inline(all[j])
			}
			quoted = all
			break
		}
		if rest, ok := cutQuote(line, ">"); ok {
			if len(plain) > 0 {
				flush()
			}
			quoted = append(quoted, s.inline(rest))
			continue
		}
		if len(quoted) > 0 {
			flush()
		}
		plain = append(plain, s.inline(line))
	}
	flush()
}

// cutQuote reports whether line starts with the quote marker (sent as is or
// escaped as &gt;, which is how Slack stores it) and returns the rest
// without one following space.
func cutQuote(line, marker string) (string, bool) {
	escaped := strings.Repeat("&gt;", len(marker))
	rest, ok := strings.CutPrefix(line, marker)
	if !ok {
		rest, ok = strings.CutPrefix(line, escaped)
	}
	if !ok {
		return "", false
	}
	return strings.TrimPrefix(rest, " "), true
}

// inline renders one line: markup tokens, code spans and emphasis.
func (s *Server) inline(line string) string {
	var b strings.Builder
	for i := 0; i < len(line); {
		c := line[i]
		switch {
		case c == '<':
			if j := strings.IndexByte(line[i+1:], '>'); j >= 0 {
				b.WriteString(s.markup(line[i+1 : i+1+j]))
				i += j + 2
				continue
			}
		case c == '&':
			// Slack's three escapes are already the HTML escapes of the characters
			// they stand for; any other & is a literal one.
			e, n := "&amp;", 1
			for _, x := range []string{"&amp;", "&lt;", "&gt;"} {
				if strings.HasPrefix(line[i:], x) {
					e, n = x, len(x)
					break
				}
			}
			b.WriteString(e)
			i += n
			continue
		case c == '`':
			if j := strings.IndexByte(line[i+1:], '`'); j > 0 {
				b.WriteString("<code>" + html.EscapeString(unescapeSlack(line[i+1:i+1+j])) + "</code>")
				i += j + 2
				continue
			}
		case c == '*' || c == '_' || c == '~':
			if end, ok := emphasisEnd(line, i); ok {
				tag := map[byte]string{'*': "b", '_': "i", '~': "s"}[c]
				b.WriteString("<" + tag + ">" + s.inline(line[i+1:end]) + "</" + tag + ">")
				i = end + 1
				continue
			}
		}
		// A literal character (a rune may take several bytes; they are copied as they come).
		b.WriteString(html.EscapeString(line[i : i+1]))
		i++
	}
	return b.String()
}

// emphasisEnd finds the marker closing the one at line[i], as Slack pairs
// them: the opening one starts a word (start of line, or after a space or
// punctuation) and is followed by a non-space; the closing one follows a
// non-space and ends a word. Markup tokens in between are skipped, so a URL
// holding the marker does not close it.
func emphasisEnd(line string, i int) (int, bool) {
	m := line[i]
	if i > 0 && isWordByte(line[i-1]) {
		return 0, false
	}
	if i+1 >= len(line) || line[i+1] == ' ' || line[i+1] == m {
		return 0, false
	}
	for k := i + 1; k < len(line); k++ {
		switch line[k] {
		case '<':
			if j := strings.IndexByte(line[k+1:], '>'); j >= 0 {
				k += j + 1
			}
		case m:
			if line[k-1] != ' ' && (k+1 == len(line) || !isWordByte(line[k+1])) {
				return k, true
			}
		}
	}
	return 0, false
}

// isWordByte reports letters and digits; bytes of multi-byte runes count as
// letters, so "naïve_word_" stays as it is.
func isWordByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c >= 0x80
}

// markup renders one <…> token as HTML.
func (s *Server) markup(tok string) string {
	inner, label, hasLabel := strings.Cut(tok, "|")
	label = unescapeSlack(label)
	mention := func(text string) string {
		return `<span class="mention">` + html.EscapeString(text) + `</span>`
	}
	switch {
	case strings.HasPrefix(inner, "@"):
		if u, ok := s.users[inner[1:]]; ok {
			return mention("@" + u.Name)
		}
		if hasLabel {
			return mention("@" + label)
		}
		return mention(inner)
	case strings.HasPrefix(inner, "#"):
		if hasLabel {
			return mention("#" + label)
		}
		return mention(inner)
	case strings.HasPrefix(inner, "!subteam^"):
		if hasLabel {
			return mention(label)
		}
		return mention("@" + strings.TrimPrefix(inner, "!subteam^"))
	case strings.HasPrefix(inner, "!date^"):
		return html.EscapeString(label)
	case inner == "!here" || inner == "!channel" || inner == "!everyone":
		return mention("@" + inner[1:])
	}
	target := unescapeSlack(inner)
	if u, err := url.Parse(target); err == nil && (u.Scheme == "http" || u.Scheme == "https" || u.Scheme == "mailto") {
		text := target
		if hasLabel && label != "" {
			text = label
		}
		return `<a href="` + html.EscapeString(target) + `" rel="noreferrer noopener" target="_blank">` + html.EscapeString(text) + `</a>`
	}
	// Not something Slack would link: show the token as typed.
	return html.EscapeString("<" + unescapeSlack(tok) + ">")
}

// unescapeSlack decodes the three escapes Slack text uses.
func unescapeSlack(s string) string {
	return strings.NewReplacer("&lt;", "<", "&gt;", ">", "&amp;", "&").Replace(s)
}
