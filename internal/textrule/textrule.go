// Package textrule is Vigil's one rule for text a person will read: every
// reason, name, team, id and email address that enters through the API, the
// admin API, Slack, the CLI or a workflow Update passes Check (or Email)
// before it is stored or shown, and nothing else in the product keeps its own
// copy of the rule.
//
// The rule is a list of refusals, never repairs: text that breaks it is
// refused with an *Error naming the field, the kind of character and where it
// is, and is never cleaned, replaced or cut. Refused:
//
//   - invalid UTF-8. Lone surrogates cannot be encoded in valid UTF-8, so they
//     arrive either as invalid bytes or, from a JSON "\ud800" escape, as
//     U+FFFD, which is refused too: it marks text damaged before it arrived;
//   - every control character (Unicode category Cc: C0 U+0000–U+001F with NUL,
//     TAB, LF and CR, DEL U+007F, C1 U+0080–U+009F) and the line and paragraph
//     separators U+2028/U+2029. No field is multi-line: each place that shows
//     this text (the CLI's status rows, Slack fields, log lines, audit exports)
//     is line-oriented, and a line break would let a reason forge a line of its
//     own ("Decision: approved by …"). A tab lines text up invisibly and CR
//     rewrites a terminal line, so neither is allowed either;
//   - every format character (category Cf): the bidi embeddings, overrides,
//     isolates and marks (U+200E/F, U+202A–U+202E, U+2066–U+2069, U+061C), which
//     make "verified \u202eenohp yb" read as "verified by phone"; zero-width
//     spaces and joiners (U+200B–U+200D, U+2060–U+2064, U+FEFF), the soft
//     hyphen, U+180E, the interlinear annotation controls (which hide text) and
//     the tag characters U+E0000–U+E007F. The few visible Cf characters (Arabic
//     number signs) and ZWJ inside emoji sequences are refused with them: a
//     support reason does not need them, and one rule without exceptions is one
//     a reader can trust;
//   - the other default-ignorable characters Unicode lists as rendering as
//     nothing (U+034F, the Hangul fillers U+115F, U+1160, U+3164, U+FFA0, the
//     Khmer inherent vowels, U+2065, U+FFF0–U+FFF8), and variation selectors,
//     except one U+FE0E or U+FE0F right after a visible character (the text or
//     emoji form of a symbol, as in ❤️, which every chat client pastes); anything
//     more can smuggle data in invisible characters;
//   - a combining mark at the start, or more than MaxMarks in a row, which stack
//     over neighbouring text ("Zalgo"), and every overlay or enclosing mark
//     (a stroke through a letter, a circle around it), which changes what the
//     text around it appears to say;
//   - letters styled as mathematical bold, italic, script or double-struck,
//     and fullwidth ones ("𝐯𝐞𝐫𝐢𝐟𝐢𝐞𝐝"): emphasis the approval card cannot
//     escape (see isStyled);
//   - the few assigned characters that fonts draw as blank although Unicode
//     does not call them space (U+2800, U+1D159, U+FFFC);
//   - private-use characters (they render differently for every reader, or not
//     at all), noncharacters, and characters unassigned in the Unicode version
//     this binary was built with (unicode.Version): nobody can say how they will
//     render, and a later version may make one a format character.
//
// Email applies the rule to addresses and adds what makes an address
// trustworthy to the person who reads it: see Email and Address.Display.
package textrule

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// DefaultMaxLen is the length limit, in characters, when Options.MaxLen is 0.
const DefaultMaxLen = 200

// MaxMarks is the most combining marks allowed in a row: enough for the
// diacritics of any language (Vietnamese stacks two), too few to pile marks
// over the neighbouring lines.
const MaxMarks = 4

// Options says what a field needs besides the character rule.
type Options struct {
	// MaxLen is the most characters (runes, not bytes) the field may hold;
	// 0 means DefaultMaxLen.
	MaxLen int
	// Required refuses a value with nothing visible in it: empty, or only
	// spaces and marks.
	Required bool
}

// Error is a refusal: Field names the input ("reason", "contacts[2].email"),
// Problem says what is wrong in words. Neither quotes the value.
type Error struct {
	Field   string
	Problem string
}

// Error reads like `reason: contains a bidi control character (U+202E) at character 9`.
func (e *Error) Error() string { return e.Field + ": " + e.Problem }

func refuse(field, format string, args ...any) *Error {
	return &Error{Field: field, Problem: fmt.Sprintf(format, args...)}
}

// Check applies the rule to value as given (it never trims or changes it) and
// returns nil or an *Error.
func Check(field, value string, opt Options) error {
	if err := check(field, value, opt); err != nil {
		return err
	}
	return nil
}

// Clean is Check followed by trimming the surrounding white space that is
// left (spaces; every other kind was refused): the form to store. Required and
// MaxLen apply to the trimmed value.
func Clean(field, value string, opt Options) (string, error) {
	if p := scanFirst(value); p != nil {
		return "", refuse(field, "%s", p)
	}
	v := strings.TrimSpace(value)
	if err := check(field, v, opt); err != nil {
		return "", err
	}
	return v, nil
}

func check(field, value string, opt Options) *Error {
	if p := scanFirst(value); p != nil {
		return refuse(field, "%s", p)
	}
	if opt.Required && !visible(value) {
		return refuse(field, "is required")
	}
	max := opt.MaxLen
	if max <= 0 {
		max = DefaultMaxLen
	}
	if n := utf8.RuneCountInString(value); n > max {
		return refuse(field, "is %d characters long; the limit is %d", n, max)
	}
	return nil
}

// problem is one refused character: what it is and where.
type problem struct {
	byteAt  int  // offset of the character in bytes
	charAt  int  // 1-based position in characters
	invalid bool // not UTF-8 at all; then size is 1 and r is the byte
	r       rune
	size    int
	what    string // "a bidi control character"
	hint    string // optional, after the position
}

func (p *problem) String() string {
	if p.invalid {
		return fmt.Sprintf("is not valid UTF-8 (byte 0x%02X at byte %d)", p.r, p.byteAt)
	}
	s := fmt.Sprintf("contains %s (%U) at character %d", p.what, p.r, p.charAt)
	if p.hint != "" {
		s += "; " + p.hint
	}
	return s
}

// scan calls visit for every refused character of s, in order.
func scan(s string, visit func(p problem)) {
	marks := 0        // combining marks in a row
	prevBase := false // the previous character can carry a presentation selector
	prevVS := false
	keycapBase := false // the last base was 0-9, # or *, followed by one selector at most
	char := 0
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		char++
		if r == utf8.RuneError && size == 1 {
			visit(problem{byteAt: i, charAt: char, invalid: true, r: rune(s[i]), size: 1})
			i += size
			marks, prevBase, prevVS = 0, false, false
			continue
		}
		what, hint := classify(r)
		isMark := unicode.In(r, unicode.Mn, unicode.Me)
		if what == "" && (r == 0xFE0E || r == 0xFE0F) {
			if !prevBase || prevVS {
				what, hint = "an invisible character", "a variation selector counts only once, right after a visible character"
			}
		} else if what == "" && isMark {
			marks++
			switch {
			case char == 1:
				what, hint = "a combining mark", "the text may not start with one"
			case r == keycap && !keycapBase:
				what, hint = "an overlay mark", "a keycap may only follow 0-9, # or *"
			case marks > MaxMarks:
				what, hint = "a combining mark", fmt.Sprintf("at most %d may stack on one character", MaxMarks)
			}
		}
		if what != "" {
			visit(problem{byteAt: i, charAt: char, r: r, size: size, what: what, hint: hint})
		}
		vs := r == 0xFE0E || r == 0xFE0F
		if !isMark {
			marks = 0
		}
		prevBase = what == "" && !vs && !isMark && !unicode.IsSpace(r)
		if !vs || prevVS {
			keycapBase = !vs && (r >= '0' && r <= '9' || r == '#' || r == '*')
		}
		prevVS = vs
		i += size
	}
}

// scanFirst returns the first refused character of s, or nil.
func scanFirst(s string) *problem {
	var first *problem
	scan(s, func(p problem) {
		if first == nil {
			first = &p
		}
	})
	return first
}

// classify names the class of a refused character, or returns "" for one
// that may appear (marks and presentation selectors are judged in context).
func classify(r rune) (what, hint string) {
	switch {
	case r == 0:
		return "a NUL character", ""
	case r == '\n' || r == '\r' || r == 0x85 || r == 0x2028 || r == 0x2029 || r == '\v' || r == '\f':
		return "a line break", "it must be one line"
	case r == '\t':
		return "a tab", "use spaces"
	case unicode.IsControl(r):
		return "a control character", ""
	case isBidi(r):
		return "a bidi control character", ""
	case r == 0xFE0E || r == 0xFE0F:
		return "", ""
	case unicode.Is(unicode.Cf, r) || unicode.Is(unicode.Other_Default_Ignorable_Code_Point, r) || unicode.Is(unicode.Variation_Selector, r):
		return "an invisible character", ""
	case isBlankSymbol(r):
		return "a character that renders as blank", "it can pass for a space or hide where text was"
	case isOverlayMark(r):
		return "an overlay mark", "it strikes through or encloses the characters around it"
	case isStyled(r) != 0:
		return "a styled letter", fmt.Sprintf("write the plain %c", isStyled(r))
	case unicode.Is(unicode.Co, r):
		return "a private-use character", ""
	case isNoncharacter(r):
		return "a noncharacter", ""
	case r == utf8.RuneError:
		return "a replacement character", "the text was damaged before it arrived (invalid UTF-8 or a lone surrogate)"
	case !unicode.In(r, unicode.L, unicode.M, unicode.N, unicode.P, unicode.S, unicode.Z):
		return "an unassigned character", ""
	}
	return "", ""
}

// isBlankSymbol reports the assigned letters and symbols that fonts draw as
// nothing: the braille blank U+2800, the musical null notehead U+1D159 and
// the object replacement character U+FFFC (a placeholder that shows as an
// empty box or not at all). They are not white space to Unicode, so neither
// the space rule nor Required would see them. (The Hangul fillers are
// default-ignorable and refused as invisible.)
func isBlankSymbol(r rune) bool {
	return r == 0x2800 || r == 0x1D159 || r == 0xFFFC
}

// isStyled returns the plain ASCII letter or digit that r is a styled form
// of (its NFKC form: the mathematical bold, italic, script, double-struck
// and monospace alphabets, fullwidth letters, ℯ), or 0. Such text renders as
// emphasis that no mrkdwn escape can take away: "𝐯𝐞𝐫𝐢𝐟𝐢𝐞𝐝" reads as Vigil's
// own bold on the approval card. It is refused rather than normalised for
// display, as everything else here: what the senior reads is what was
// typed. The ordinal indicators ª and º (Spanish, Portuguese) and ℹ (an
// emoji) are kept; superscripts, circled letters and ™ are no letters of
// the alphabet styled as emphasis, and stay.
func isStyled(r rune) rune {
	if r < utf8.RuneSelf || r == 'ª' || r == 'º' || r == 'ℹ' || !(unicode.IsLetter(r) || unicode.IsDigit(r)) {
		return 0
	}
	var buf [utf8.UTFMax]byte
	n := utf8.EncodeRune(buf[:], r)
	plain := norm.NFKC.Bytes(buf[:n])
	if len(plain) != 1 {
		return 0
	}
	if c := rune(plain[0]); c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
		return c
	}
	return 0
}

// keycap is U+20E3, the enclosing keycap of the emoji 1️⃣, #️⃣ and *️⃣.
const keycap = 0x20E3

// isOverlayMark reports the combining marks that draw across their base
// rather than above or below it (canonical combining class 1, Overlay: a
// stroke, solidus or tilde through a letter, as U+0336 turns "approved" into
// a struck-out word) and the enclosing marks (category Me: circles, squares,
// screens drawn around the text), except the keycap U+20E3 of emoji such as
// 1️⃣, which scan allows only after 0-9, # or * (optionally with U+FE0F
// between). Both change what neighbouring text appears to say.
func isOverlayMark(r rune) bool {
	switch {
	case r >= 0x0334 && r <= 0x0338, r == 0x1CD4, r >= 0x1CE2 && r <= 0x1CE8,
		r >= 0x20D2 && r <= 0x20D3, r >= 0x20D8 && r <= 0x20DA, r >= 0x20E5 && r <= 0x20E6,
		r >= 0x20EA && r <= 0x20EB, r == 0x10A39, r >= 0x16AF0 && r <= 0x16AF4, r == 0x1BC9E,
		r >= 0x1D167 && r <= 0x1D169:
		return true
	case r == 0x20E3:
		return false
	}
	return unicode.Is(unicode.Me, r)
}

// visible reports whether s has at least one character a reader sees as
// something: a letter, digit, punctuation mark or symbol. White space and
// marks alone (a mark may follow a space) leave a field that looks empty.
func visible(s string) bool {
	for _, r := range s {
		if unicode.In(r, unicode.L, unicode.N, unicode.P, unicode.S) && !isBlankSymbol(r) {
			return true
		}
	}
	return false
}

// isBidi reports the characters that change the direction of the text
// around them: marks, embeddings, overrides and isolates.
func isBidi(r rune) bool {
	return r == 0x061C || r == 0x200E || r == 0x200F || (r >= 0x202A && r <= 0x202E) || (r >= 0x2066 && r <= 0x2069)
}

// isNoncharacter reports Unicode's 66 noncharacters.
func isNoncharacter(r rune) bool {
	return (r >= 0xFDD0 && r <= 0xFDEF) || r&0xFFFE == 0xFFFE
}

// Escape returns s with every character the rule refuses written out as
// [U+202E] (invalid bytes as [0xFF]), for the few places that must show text
// that never passed the rule: a value recorded before it existed, an id from
// a signed Slack payload that is being refused. Text that passes comes back
// unchanged.
func Escape(s string) string {
	var b strings.Builder
	last := 0
	scan(s, func(p problem) {
		b.WriteString(s[last:p.byteAt])
		if p.invalid {
			fmt.Fprintf(&b, "[0x%02X]", p.r)
		} else {
			fmt.Fprintf(&b, "[%U]", p.r)
		}
		last = p.byteAt + p.size
	})
	if last == 0 && b.Len() == 0 {
		return s
	}
	b.WriteString(s[last:])
	return b.String()
}
