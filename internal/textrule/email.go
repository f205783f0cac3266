package textrule

import (
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/mtibben/confusables"
	"golang.org/x/net/idna"
	"golang.org/x/text/unicode/bidi"
)

// Address limits, from RFC 5321 (a path holds at most 256 octets including
// the angle brackets; a local part at most 64).
const (
	MaxAddressLen = 254
	MaxLocalLen   = 64
)

// Address is an email address that passed Email. Its String form is the
// canonical one, to store, send to and compare; Display is the one to show.
type Address struct {
	local   string // ASCII dot-atom, as given
	domain  string // lower-case ASCII; internationalised labels as A-labels
	unicode string // the domain in Unicode when it has an internationalised label, else ""
}

// String is the canonical form: the local part as given, "@", the domain in
// lower case with every internationalised label as its A-label (xn--…). It is
// pure ASCII, so any mail relay can deliver to it, and two spellings of one
// domain (Unicode or A-label, any case) store and compare the same.
func (a Address) String() string { return a.local + "@" + a.domain }

// Display is the form a person reads, in the customer notice and on the
// approval card: the canonical form, followed for an internationalised domain
// by its Unicode form in parentheses, as in
// "dana@xn--mnchen-3ya.de (dana@münchen.de)". The A-label comes first because
// it cannot pass for another address: "xn--80ak6a.com" never looks like
// "ape.com", which its Unicode form "аре.com" (all Cyrillic) does. The Unicode
// form follows so that the owner of a real internationalised address still
// recognises it, except for a right-to-left domain (Hebrew, Arabic…), whose
// Unicode form would reorder the text around it: that one shows its A-label
// alone.
func (a Address) Display() string {
	if a.unicode == "" {
		return a.String()
	}
	return a.String() + " (" + a.local + "@" + a.unicode + ")"
}

// Local is the part before the @.
func (a Address) Local() string { return a.local }

// DisplayDomain is the domain as Display shows it, for places that show the
// domain without the local part (a masked address): "xn--mnchen-3ya.de
// (münchen.de)", or just the domain when it is ASCII.
func (a Address) DisplayDomain() string {
	if a.unicode == "" {
		return a.domain
	}
	return a.domain + " (" + a.unicode + ")"
}

// SameMailbox reports whether a and b name the same mailbox as far as Vigil
// is concerned: equal canonical forms, ignoring letter case (the local part
// included: no real mail system tells Dana@ from dana@, and treating them as
// two would let one address be added twice).
func (a Address) SameMailbox(b Address) bool { return strings.EqualFold(a.String(), b.String()) }

// LooksLike reports whether a and b are different mailboxes that a reader
// could take for one another: their Unicode skeletons (UTS #39, the
// confusables data) are equal once letter case is ignored, as with
// "dana@exarnple.com" and "dana@example.com", "paypa1.com" and "paypal.com",
// or an all-Cyrillic "ехаmрlе.com" and the Latin one. Both the canonical and
// the Unicode form of an internationalised domain are compared, since a
// reader may see either.
func (a Address) LooksLike(b Address) bool {
	if a.SameMailbox(b) {
		return false
	}
	for _, x := range a.readForms() {
		for _, y := range b.readForms() {
			for _, sx := range skeletons(x) {
				for _, sy := range skeletons(y) {
					if sx == sy {
						return true
					}
				}
			}
		}
	}
	return false
}

// skeletons are the UTS #39 skeletons of s a reader may compare, with
// letter case ignored on the result (the confusables data maps "0" to "O",
// and an address's case does not matter): that of s lower-cased, and that of
// s as written. Both are needed: lower-casing first turns a capital I,
// which reads as a small l, into an i, which does not ("dIana" and
// "dlana"); without it, "rn" and "m" in a capital word would be missed.
func skeletons(s string) [2]string {
	return [2]string{
		strings.ToLower(confusables.Skeleton(strings.ToLower(s))),
		strings.ToLower(confusables.Skeleton(s)),
	}
}

// readForms are the spellings of a that a person may read.
func (a Address) readForms() []string {
	if a.unicode == "" {
		return []string{a.String()}
	}
	return []string{a.String(), a.local + "@" + a.unicode}
}

// DisplayEmail shows a stored address: Display of it when it passes Email,
// else marked as not valid and written in printable ASCII, every other
// character as [U+0430], so that an address recorded before this rule
// existed still cannot pass for another.
func DisplayEmail(s string) string {
	a, err := Email("email", s)
	if err != nil {
		return "(not a valid address: " + asciiOnly(s) + ")"
	}
	return a.Display()
}

// asciiOnly writes every character of s outside printable ASCII as [U+0430]
// (invalid bytes as [0xFF]).
func asciiOnly(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, "[0x%02X]", s[i])
		case r < 0x20 || r > 0x7e:
			fmt.Fprintf(&b, "[%U]", r)
		default:
			b.WriteRune(r)
		}
		i += size
	}
	return b.String()
}

// atext is the set of ASCII characters an RFC 5322 dot-atom may use besides
// letters and digits.
// It leaves out "!" and "%", which RFC 5321 allows but which old relays
// still read as routes ("dana%evil.example@relay.example" delivered to
// evil.example, "evil!dana@…" as a UUCP bang path): the mail would go
// somewhere other than the address the customer reads.
const atext = "#$&'*+-/=?^_`{|}~"

// Email accepts a bare address like dana@example.com and returns it in
// canonical form. Besides the text rule it refuses:
//
//   - a display name, angle brackets, comments, quoted local parts, and more or
//     less than one "@";
//   - a local part that is not an ASCII dot-atom. Internationalised (SMTPUTF8)
//     local parts are refused: a non-ASCII local part cannot be shown in a
//     form that does not pass for another (there is no A-label for it), few
//     relays deliver to it, and almost no customer has one;
//   - IP-literal domains ("[192.0.2.1]") and domains that are an IP address or
//     end in a numeric label ("192.0.2.1", "example.123"), which browsers and
//     resolvers read as IPv4;
//   - a domain without a dot, or whose top-level label is not letters or an
//     A-label;
//   - a label that IDNA2008 does not allow for registration
//     (golang.org/x/net/idna's Registration profile: no mapping, so fullwidth
//     or upper-case non-ASCII letters are refused rather than silently
//     folded; hyphen, joiner and bidi rules; DNS lengths);
//   - a label whose letters come from more than one script ("exаmple" with a
//     Cyrillic а), except the combinations a CJK name uses (Han with Hiragana
//     and Katakana, with Bopomofo, or with Hangul). A label given as an A-label
//     is checked in its Unicode form, so punycode does not get around this;
//   - more than 254 characters in all, or 64 in the local part.
func Email(field, addr string) (Address, error) {
	if err := check(field, addr, Options{Required: true, MaxLen: MaxAddressLen}); err != nil {
		return Address{}, err
	}
	if _, d, _ := strings.Cut(addr, "@"); strings.HasPrefix(d, "[") {
		return Address{}, refuse(field, "has an IP address literal after the @; use a domain name")
	}
	if strings.ContainsAny(addr, " <>\"(),;:\\") {
		return Address{}, refuse(field, "must be a bare address like name@example.com, without a name, quotes, spaces or <>")
	}
	local, domain, ok := strings.Cut(addr, "@")
	if !ok || strings.Contains(domain, "@") {
		return Address{}, refuse(field, "must contain exactly one @, as in name@example.com")
	}
	if err := checkLocal(field, local); err != nil {
		return Address{}, err
	}
	ascii, uni, err := checkDomain(field, domain)
	if err != nil {
		return Address{}, err
	}
	a := Address{local: local, domain: ascii}
	// The Unicode form is shown beside the A-label only if it passes the
	// text rule itself: IDNA's tables and the rule agree today, but the
	// form a person reads must not depend on that staying so.
	if uni != ascii && !strings.ContainsFunc(uni, isRTL) && scanFirst(uni) == nil {
		a.unicode = uni
	}
	if n := len(a.String()); n > MaxAddressLen {
		return Address{}, refuse(field, "is %d characters long in ASCII form; the limit is %d", n, MaxAddressLen)
	}
	return a, nil
}

func checkLocal(field, local string) error {
	switch {
	case local == "":
		return refuse(field, "has nothing before the @")
	case len(local) > MaxLocalLen:
		return refuse(field, "has %d characters before the @; the limit is %d", len(local), MaxLocalLen)
	case strings.HasPrefix(local, ".") || strings.HasSuffix(local, ".") || strings.Contains(local, ".."):
		return refuse(field, "may not start or end with a dot before the @, nor have two dots in a row")
	}
	for i, r := range local {
		if r > unicode.MaxASCII {
			return refuse(field, "has a non-ASCII character (%U) before the @ at character %d; only ASCII letters, digits and %s are accepted there", r, len([]rune(local[:i]))+1, atext)
		}
		if r == '%' || r == '!' {
			return refuse(field, "has %q before the @ at character %d, which some mail relays read as a route to another host", r, i+1)
		}
		if !isAlnum(r) && r != '.' && !strings.ContainsRune(atext, r) {
			return refuse(field, "has %q before the @ at character %d; only ASCII letters, digits and %s are accepted there", r, i+1, atext)
		}
	}
	return nil
}

// registration is IDNA2008's validation for registering a name: it refuses
// what Lookup would silently map (fullwidth letters, upper case, ß-folding).
var registration = idna.Registration

func checkDomain(field, domain string) (ascii, uni string, err error) {
	switch {
	case domain == "":
		return "", "", refuse(field, "has nothing after the @")
	case !strings.Contains(domain, "."):
		return "", "", refuse(field, "needs a domain with a dot after the @, like example.com")
	}
	if slices.Contains(strings.Split(domain, "."), "") {
		return "", "", refuse(field, "has an empty label in the domain (a dot at either end, or two in a row)")
	}
	lowered := asciiLower(domain)
	ascii, perr := registration.ToASCII(lowered)
	if perr != nil {
		return "", "", refuse(field, "has a domain that is not a valid domain name: %s", domainProblem(lowered))
	}
	uni, perr = registration.ToUnicode(ascii)
	if perr != nil {
		return "", "", refuse(field, "has a domain that is not a valid domain name: %s", domainProblem(lowered))
	}
	labels := strings.Split(ascii, ".")
	tld := labels[len(labels)-1]
	if allDigits(labels) || !(strings.HasPrefix(tld, "xn--") || isLetters(tld)) {
		return "", "", refuse(field, "has a domain that looks like an IP address or ends in a label that is not a top-level domain; use a name like example.com")
	}
	for i, label := range strings.Split(uni, ".") {
		if scripts := labelScripts(label); !oneScript(scripts) {
			return "", "", refuse(field, "has a domain whose label %d mixes scripts (%s), so it can pass for another name", i+1, strings.Join(scripts, " and "))
		}
	}
	return ascii, uni, nil
}

// domainProblem says which label broke the IDNA rules, without quoting it.
func domainProblem(domain string) string {
	for i, label := range strings.Split(domain, ".") {
		if _, err := registration.ToASCII(label); err != nil {
			return fmt.Sprintf("label %d uses characters or a form not allowed in domain names (IDNA2008: lower-case letters, digits and inner hyphens)", i+1)
		}
	}
	return "it is too long or breaks the rules for right-to-left labels"
}

// asciiLower lower-cases A–Z only; other letters must already be lower case,
// which the registration profile checks.
func asciiLower(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'A' && r <= 'Z' {
			return r + 'a' - 'A'
		}
		return r
	}, s)
}

// isRTL reports a character of a right-to-left script.
func isRTL(r rune) bool {
	p, _ := bidi.LookupRune(r)
	return p.Class() == bidi.R || p.Class() == bidi.AL
}

func isAlnum(r rune) bool {
	return (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9')
}

func isLetters(s string) bool {
	if len(s) < 2 {
		return false
	}
	for _, r := range s {
		if r < 'a' || r > 'z' {
			return false
		}
	}
	return true
}

// allDigits reports a domain every label of which is a number, as an IPv4
// address is.
func allDigits(labels []string) bool {
	for _, l := range labels {
		for _, r := range l {
			if r < '0' || r > '9' {
				return false
			}
		}
	}
	return true
}

// labelScripts lists the scripts of label's characters, Common (digits,
// hyphen) and Inherited (combining marks) left out, in order of appearance.
func labelScripts(label string) []string {
	var out []string
	seen := map[string]bool{}
	for _, r := range label {
		name := scriptOf(r)
		if name == "" || seen[name] {
			continue
		}
		seen[name] = true
		out = append(out, name)
	}
	return out
}

// scriptOf names r's script, or "" for Common, Inherited and unknown.
func scriptOf(r rune) string {
	if r < unicode.MaxASCII {
		if isAlnum(r) && !(r >= '0' && r <= '9') {
			return "Latin"
		}
		return ""
	}
	for name, table := range unicode.Scripts {
		if name == "Common" || name == "Inherited" {
			continue
		}
		if unicode.Is(table, r) {
			return name
		}
	}
	return ""
}

// cjk are the script sets one name may combine, as Unicode's UTS #39
// "highly restrictive" level allows them (without Latin).
var cjk = [][]string{
	{"Han", "Hiragana", "Katakana"},
	{"Han", "Bopomofo"},
	{"Han", "Hangul"},
}

func oneScript(scripts []string) bool {
	if len(scripts) <= 1 {
		return true
	}
	for _, set := range cjk {
		all := true
		for _, s := range scripts {
			if !slices.Contains(set, s) {
				all = false
				break
			}
		}
		if all {
			return true
		}
	}
	return false
}
