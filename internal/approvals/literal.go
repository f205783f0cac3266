package approvals

// Literal is s as Slack mrkdwn that renders as its own characters, cut to n
// characters: the one escaping every Vigil message to Slack uses for text
// it did not write (a reason, an agent's name, a control panel's words), so
// that no path formats, mentions or quotes on someone else's behalf.
func Literal(s string, n int) string { return md(s, n, " ") }
