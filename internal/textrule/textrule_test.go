package textrule

import (
	"errors"
	"strings"
	"testing"
)

func TestCheckClasses(t *testing.T) {
	tests := []struct {
		name    string
		value   string
		opt     Options
		problem string // "" accepts; else a substring of Error.Problem
	}{
		{"plain ASCII", "customer asked in chat, ticket #8812", Options{}, ""},
		{"accents, CJK, emoji", "Kundin bestätigt 確認済み 👍", Options{}, ""},
		{"decomposed accent", "cafe\u0301", Options{}, ""},
		{"emoji presentation selector", "❤\ufe0f thanks", Options{}, ""},
		{"no-break space", "ticket\u00a0#1", Options{}, ""},
		{"invalid UTF-8", "bad \xff byte", Options{}, "is not valid UTF-8 (byte 0xFF at byte 4)"},
		{"encoded surrogate", "x\xed\xa0\x80", Options{}, "is not valid UTF-8"},
		{"replacement character", "x\ufffd", Options{}, "a replacement character (U+FFFD) at character 2"},
		{"NUL", "a\x00b", Options{}, "a NUL character (U+0000) at character 2"},
		{"BEL", "a\ab", Options{}, "a control character (U+0007)"},
		{"backspace", "a\bb", Options{}, "a control character (U+0008)"},
		{"ANSI escape", "\x1b[31mred", Options{}, "a control character (U+001B) at character 1"},
		{"DEL", "a\x7f", Options{}, "a control character (U+007F)"},
		{"C1 CSI", "a\u009b", Options{}, "a control character (U+009B)"},
		{"tab", "a\tb", Options{}, "a tab (U+0009)"},
		{"line feed", "one\ntwo", Options{}, "a line break (U+000A) at character 4; it must be one line"},
		{"carriage return", "one\rtwo", Options{}, "a line break (U+000D)"},
		{"next line", "one\u0085two", Options{}, "a line break (U+0085)"},
		{"line separator", "one\u2028two", Options{}, "a line break (U+2028)"},
		{"RLO", "verified \u202eenohp yb\u202c", Options{}, "a bidi control character (U+202E) at character 10"},
		{"LRE", "\u202ax", Options{}, "a bidi control character (U+202A)"},
		{"RLI isolate", "a\u2067b", Options{}, "a bidi control character (U+2067)"},
		{"PDI", "a\u2069", Options{}, "a bidi control character (U+2069)"},
		{"RLM", "a\u200f", Options{}, "a bidi control character (U+200F)"},
		{"LRM", "a\u200e", Options{}, "a bidi control character (U+200E)"},
		{"Arabic letter mark", "a\u061c", Options{}, "a bidi control character (U+061C)"},
		{"zero-width space", "pay\u200bpal", Options{}, "an invisible character (U+200B) at character 4"},
		{"zero-width joiner", "a\u200db", Options{}, "an invisible character (U+200D)"},
		{"word joiner", "a\u2060b", Options{}, "an invisible character (U+2060)"},
		{"invisible times", "a\u2062b", Options{}, "an invisible character (U+2062)"},
		{"BOM", "\ufeffok", Options{}, "an invisible character (U+FEFF) at character 1"},
		{"soft hyphen", "ap\u00adple", Options{}, "an invisible character (U+00AD)"},
		{"Mongolian vowel separator", "a\u180eb", Options{}, "an invisible character (U+180E)"},
		{"interlinear annotation", "a\ufff9hidden\ufffbb", Options{}, "an invisible character (U+FFF9)"},
		{"tag character", "ok\U000E0041", Options{}, "an invisible character (U+E0041)"},
		{"Hangul filler", "\u3164", Options{}, "an invisible character (U+3164)"},
		{"combining grapheme joiner", "a\u034fb", Options{}, "an invisible character (U+034F)"},
		{"variation selector 1", "a\ufe00", Options{}, "an invisible character (U+FE00)"},
		{"supplementary variation selector", "a\U000E0100", Options{}, "an invisible character (U+E0100)"},
		{"presentation selector twice", "❤\ufe0f\ufe0f", Options{}, "an invisible character (U+FE0F) at character 3"},
		{"presentation selector alone", "\ufe0f", Options{}, "an invisible character (U+FE0F) at character 1"},
		{"combining mark first", "\u0301a", Options{}, "a combining mark (U+0301) at character 1"},
		{"stacked combining marks", "e\u0301\u0302\u0303\u0304\u0305", Options{}, "a combining mark (U+0305) at character 6"},
		{"private use", "logo \uf8ff", Options{}, "a private-use character (U+F8FF)"},
		{"supplementary private use", "\U000F0000", Options{}, "a private-use character (U+F0000)"},
		{"noncharacter", "a\ufdd0", Options{}, "a noncharacter (U+FDD0)"},
		{"noncharacter FFFF", "a\uffff", Options{}, "a noncharacter (U+FFFF)"},
		{"unassigned", "a\U00050000", Options{}, "an unassigned character (U+50000)"},
		{"required and empty", "", Options{Required: true}, "is required"},
		{"required and blank", "   ", Options{Required: true}, "is required"},
		{"required and only wide spaces", "\u3000\u2003\u00a0", Options{Required: true}, "is required"},
		{"required and a mark after a space", " \u0301", Options{Required: true}, "is required"},
		{"braille blank", "ok \u2800 ok", Options{}, "a character that renders as blank (U+2800) at character 4"},
		{"braille blank alone", "\u2800", Options{Required: true}, "a character that renders as blank (U+2800)"},
		{"musical null notehead", "\U0001D159", Options{}, "a character that renders as blank (U+1D159)"},
		{"object replacement", "a\ufffc", Options{}, "a character that renders as blank (U+FFFC)"},
		{"hangul filler", "\u3164", Options{Required: true}, "an invisible character (U+3164)"},
		{"halfwidth hangul filler", "\uffa0", Options{}, "an invisible character (U+FFA0)"},
		{"overlay stroke", "approved\u0336", Options{}, "an overlay mark (U+0336) at character 9"},
		{"overlay solidus", "no\u0338t", Options{}, "an overlay mark (U+0338)"},
		{"overlay long vertical line", "a\u20d2", Options{}, "an overlay mark (U+20D2)"},
		{"enclosing circle", "a\u20dd", Options{}, "an overlay mark (U+20DD)"},
		{"enclosing screen", "a\u20e2", Options{}, "an overlay mark (U+20E2)"},
		{"cyrillic enclosing", "a\u0488", Options{}, "an overlay mark (U+0488)"},
		{"keycap emoji", "press 1\ufe0f\u20e3", Options{}, ""},
		{"keycap after #", "#\ufe0f\u20e3 and *\u20e3 and 0\u20e3", Options{}, ""},
		{"keycap after a letter", "a\u20e3", Options{}, "an overlay mark (U+20E3) at character 2; a keycap may only follow 0-9, # or *"},
		{"keycap after a selector on a letter", "❤\ufe0f\u20e3", Options{}, "an overlay mark (U+20E3) at character 3"},
		{"keycap after a space", "1 \u20e3", Options{}, "an overlay mark (U+20E3) at character 3"},
		{"keycap twice", "1\u20e3\u20e3", Options{}, "an overlay mark (U+20E3) at character 3"},
		{"math bold letters", "\U0001D42F\U0001D41E\U0001D42B\U0001D422\U0001D41F\U0001D422\U0001D41E\U0001D41D by phone", Options{}, "a styled letter (U+1D42F) at character 1; write the plain v"},
		{"math italic letter", "ok \U0001D463", Options{}, "a styled letter (U+1D463) at character 4"},
		{"math double-struck digit", "ticket \U0001D7D9", Options{}, "a styled letter (U+1D7D9)"},
		{"fullwidth letter", "\uff56erified", Options{}, "a styled letter (U+FF56)"},
		{"script small e", "v\u212frified", Options{}, "a styled letter (U+212F)"},
		{"ordinals, info emoji, micro, superscript, trade mark", "1º andar, 2ª, ℹ\ufe0f, 5 µs, 3 m², Acme™", Options{}, ""},
		{"required and one symbol", "✓", Options{Required: true}, ""},
		{"optional and empty", "", Options{}, ""},
		{"at the limit", strings.Repeat("é", 10), Options{MaxLen: 10}, ""},
		{"over the limit in characters", strings.Repeat("é", 11), Options{MaxLen: 10}, "is 11 characters long; the limit is 10"},
		{"default limit", strings.Repeat("x", DefaultMaxLen+1), Options{}, "the limit is 200"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Check("reason", tt.value, tt.opt)
			if tt.problem == "" {
				if err != nil {
					t.Fatalf("Check refused: %v", err)
				}
				if got := Escape(tt.value); got != tt.value {
					t.Fatalf("Escape changed accepted text: %q", got)
				}
				return
			}
			var te *Error
			if !errors.As(err, &te) {
				t.Fatalf("Check = %v, want an *Error", err)
			}
			if te.Field != "reason" || !strings.Contains(te.Problem, tt.problem) {
				t.Fatalf("Check = %q, want field reason and a problem containing %q", err, tt.problem)
			}
			if !strings.HasPrefix(err.Error(), "reason: ") {
				t.Fatalf("Error() = %q", err.Error())
			}
			if tt.value != "" && strings.TrimSpace(tt.value) != "" && strings.Contains(err.Error(), tt.value) {
				t.Fatalf("the error quotes the value: %q", err)
			}
			if Check("reason", Escape(tt.value), Options{MaxLen: 10 * len(tt.value)}) != nil && tt.opt == (Options{}) {
				t.Fatalf("Escape(%q) = %q still breaks the rule", tt.value, Escape(tt.value))
			}
		})
	}
}

func TestErrorMessage(t *testing.T) {
	err := Check("reason", "verified \u202eenohp yb", Options{})
	if got, want := err.Error(), "reason: contains a bidi control character (U+202E) at character 10"; got != want {
		t.Fatalf("Error() = %q, want %q", got, want)
	}
}

func TestClean(t *testing.T) {
	tests := []struct {
		in, want string
		opt      Options
		wantErr  string
	}{
		{"  lost phone  ", "lost phone", Options{Required: true}, ""},
		{"lost phone\n", "", Options{}, "a line break (U+000A) at character 11"},
		{"\tlost phone", "", Options{}, "a tab"},
		{"    ", "", Options{Required: true}, "is required"},
		{"  abc  ", "abc", Options{MaxLen: 3}, ""},
		{"abcd", "", Options{MaxLen: 3}, "the limit is 3"},
	}
	for _, tt := range tests {
		got, err := Clean("reason", tt.in, tt.opt)
		switch {
		case tt.wantErr == "" && (err != nil || got != tt.want):
			t.Errorf("Clean(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("Clean(%q) error %v, want one containing %q", tt.in, err, tt.wantErr)
		}
	}
}

func TestEscape(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain", "plain"},
		{"verified \u202eenohp yb\u202c", "verified [U+202E]enohp yb[U+202C]"},
		{"a\x00b\xffc", "a[U+0000]b[0xFF]c"},
		{"\u200b", "[U+200B]"},
	}
	for _, tt := range tests {
		if got := Escape(tt.in); got != tt.want {
			t.Errorf("Escape(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestEmail(t *testing.T) {
	tests := []struct {
		name, in         string
		canonical, shown string // for accepted addresses
		problem          string // "" accepts
	}{
		{"plain", "dana@example.com", "dana@example.com", "dana@example.com", ""},
		{"upper-case domain is lowered", "Dana@Example.COM", "Dana@example.com", "Dana@example.com", ""},
		{"atext local part", "o'brien+vigil@example.co.uk", "o'brien+vigil@example.co.uk", "o'brien+vigil@example.co.uk", ""},
		{"percent route", "dana%evil.example@example.com", "", "", "which some mail relays read as a route to another host"},
		{"bang path", "evil!dana@example.com", "", "", "read as a route"},
		{"internationalised domain", "dana@münchen.de", "dana@xn--mnchen-3ya.de", "dana@xn--mnchen-3ya.de (dana@münchen.de)", ""},
		{"A-label given", "dana@XN--MNCHEN-3YA.de", "dana@xn--mnchen-3ya.de", "dana@xn--mnchen-3ya.de (dana@münchen.de)", ""},
		{"whole-script Cyrillic shows its A-label", "dana@аре.com", "dana@xn--80ak6a.com", "dana@xn--80ak6a.com (dana@аре.com)", ""},
		// IDNA takes five stacked marks; the text rule does not, so the
		// Unicode form, which would pile them over the line, is not shown.
		{"a Unicode form the rule refuses shows its A-label alone", "dana@xn--ab-6tbaaaa.com", "dana@xn--ab-6tbaaaa.com", "dana@xn--ab-6tbaaaa.com", ""},
		{"right-to-left domain shows its A-label alone", "dana@ישראל.co.il", "dana@xn--4dbrk0ce.co.il", "dana@xn--4dbrk0ce.co.il", ""},
		{"Japanese mixes Han and kana", "dana@例え.テスト", "dana@xn--r8jz45g.xn--zckzah", "dana@xn--r8jz45g.xn--zckzah (dana@例え.テスト)", ""},
		{"mixed Latin and Cyrillic", "dana@ex\u0430mple.com", "", "", "label 1 mixes scripts (Latin and Cyrillic)"},
		{"mixed scripts as an A-label", "dana@xn--exmple-4nf.com", "", "", "mixes scripts (Latin and Cyrillic)"},
		{"mixed Latin and Greek", "dana@g\u03bfogle.com", "", "", "mixes scripts (Latin and Greek)"},
		{"bidi in local part", "dana\u202e@example.com", "", "", "a bidi control character (U+202E) at character 5"},
		{"zero-width in domain", "dana@exa\u200bmple.com", "", "", "an invisible character (U+200B)"},
		{"NUL", "dana@example.com\x00", "", "", "a NUL character"},
		{"invalid UTF-8", "dana@ex\xffample.com", "", "", "is not valid UTF-8"},
		{"display name", "Dana <dana@example.com>", "", "", "must be a bare address"},
		{"angle brackets", "<dana@example.com>", "", "", "must be a bare address"},
		{"quoted local part", `"dana smith"@example.com`, "", "", "must be a bare address"},
		{"no @", "dana.example.com", "", "", "exactly one @"},
		{"two @", "dana@evil.test@example.com", "", "", "exactly one @"},
		{"empty local", "@example.com", "", "", "nothing before the @"},
		{"dot first", ".dana@example.com", "", "", "may not start or end with a dot"},
		{"two dots", "da..na@example.com", "", "", "two dots in a row"},
		{"non-ASCII local part", "dañа@example.com", "", "", "a non-ASCII character (U+00F1) before the @ at character 3"},
		{"local part too long", strings.Repeat("a", 65) + "@example.com", "", "", "65 characters before the @; the limit is 64"},
		{"address too long", "a@" + strings.Repeat(strings.Repeat("b", 63)+".", 4) + "com", "", "", "the limit is 254"},
		{"IPv4 literal", "dana@[192.0.2.1]", "", "", "an IP address literal"},
		{"IPv6 literal", "dana@[IPv6:2001:db8::1]", "", "", "an IP address literal"},
		{"bare IPv4", "dana@192.0.2.1", "", "", "looks like an IP address"},
		{"numeric top-level label", "dana@example.123", "", "", "looks like an IP address"},
		{"hex IPv4 form", "dana@0x7f.1", "", "", "looks like an IP address"},
		{"no dot", "dana@localhost", "", "", "a domain with a dot"},
		{"trailing dot", "dana@example.com.", "", "", "an empty label"},
		{"underscore in domain", "dana@exa_mple.com", "", "", "label 1 uses characters or a form not allowed"},
		{"fullwidth letters are not folded", "dana@\uff45xample.com", "", "", "a styled letter (U+FF45) at character 6"},
		{"upper-case non-ASCII is not folded", "dana@MÜNCHEN.de", "", "", "not allowed in domain names"},
		{"leading hyphen", "dana@-example.com", "", "", "label 1 uses characters or a form not allowed"},
		{"empty", "", "", "", "is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := Email("email", tt.in)
			if tt.problem == "" {
				if err != nil {
					t.Fatalf("Email refused: %v", err)
				}
				if a.String() != tt.canonical || a.Display() != tt.shown {
					t.Fatalf("Email = %q shown %q, want %q shown %q", a.String(), a.Display(), tt.canonical, tt.shown)
				}
				if DisplayEmail(tt.in) != tt.shown {
					t.Fatalf("DisplayEmail = %q", DisplayEmail(tt.in))
				}
				if got := a.Local() + "@" + strings.SplitN(a.DisplayDomain(), " ", 2)[0]; got != tt.canonical {
					t.Fatalf("Local and DisplayDomain give %q, want %q", got, tt.canonical)
				}
				again, err := Email("email", a.String())
				if err != nil || again != a {
					t.Fatalf("the canonical form does not parse to itself: %v %v", again, err)
				}
				return
			}
			var te *Error
			if !errors.As(err, &te) || te.Field != "email" || !strings.Contains(te.Problem, tt.problem) {
				t.Fatalf("Email = %v, want a problem containing %q", err, tt.problem)
			}
			if tt.in != "" && strings.Contains(err.Error(), tt.in) {
				t.Fatalf("the error quotes the address: %q", err)
			}
			shown := DisplayEmail(tt.in)
			if !strings.HasPrefix(shown, "(not a valid address: ") || strings.ContainsFunc(shown, func(r rune) bool { return r < 0x20 || r > 0x7e }) {
				t.Fatalf("DisplayEmail = %q, want it marked and in printable ASCII", shown)
			}
		})
	}
}

func TestSameMailbox(t *testing.T) {
	parse := func(s string) Address {
		t.Helper()
		a, err := Email("email", s)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	if !parse("Dana@Example.com").SameMailbox(parse("dana@example.COM")) {
		t.Fatal("letter case makes two mailboxes")
	}
	if !parse("dana@münchen.de").SameMailbox(parse("DANA@xn--mnchen-3ya.de")) {
		t.Fatal("the Unicode and A-label forms make two mailboxes")
	}
	if parse("dana@example.com").SameMailbox(parse("dana@example.org")) {
		t.Fatal("different domains are one mailbox")
	}
}

func TestLooksLike(t *testing.T) {
	parse := func(s string) Address {
		t.Helper()
		a, err := Email("email", s)
		if err != nil {
			t.Fatalf("Email(%q): %v", s, err)
		}
		return a
	}
	for _, tt := range []struct {
		a, b string
		want bool
	}{
		{"dana@exarnple.com", "dana@example.com", true},
		{"dana@examp1e.com", "dana@example.com", true},
		{"dana@EXARNPLE.com", "Dana@example.com", true},
		{"rnary@example.com", "mary@example.com", true},
		{"0wner@example.com", "owner@example.com", true},
		{"dana@аре.com", "dana@ape.com", true},          // all-Cyrillic domain, shown as an A-label first
		{"dana@example.com", "Dana@EXAMPLE.com", false}, // the same mailbox is not a look-alike
		{"dana@example.org", "dana@example.com", false},
		{"dana@exannple.com", "dana@example.com", false},
		{"ops@example.com", "dana@example.com", false},
		// A capital I reads as a small l; lower-casing first hides it.
		{"dIana@example.com", "dlana@example.com", true},
		{"Iisa@example.com", "lisa@example.com", true},
		{"bilI@example.com", "bill@example.com", true},
		{"Ian@example.com", "lan@example.com", true},
		// The domain is lower-cased when parsed, and shown so: paypai.com
		// reads as itself.
		{"dana@paypaI.com", "dana@paypal.com", false},
		{"dana@PAYPAI.COM", "dana@paypal.com", false},
		{"dana@paypa1.com", "dana@paypal.com", true},
		{"OwnerI@example.com", "ownerl@example.com", true},
		{"dIana@example.com", "diana@example.com", false}, // the same mailbox
		{"Ian@example.com", "ops@example.com", false},
		{"lan@example.com", "ian@example.com", false}, // a small i is no l
	} {
		t.Run(tt.a+"~"+tt.b, func(t *testing.T) {
			a, b := parse(tt.a), parse(tt.b)
			if got := a.LooksLike(b); got != tt.want {
				t.Fatalf("LooksLike = %v, want %v", got, tt.want)
			}
			if got := b.LooksLike(a); got != tt.want {
				t.Fatalf("LooksLike is not symmetric: reversed = %v", got)
			}
		})
	}
}
