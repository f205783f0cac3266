// Package phone validates customers' phone numbers as E.164 and masks them
// for display.
package phone

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/nyaruka/phonenumbers"
)

// ErrInvalid means a value is not a valid phone number in E.164 form.
var ErrInvalid = errors.New("not a valid phone number in E.164 form (a plus, the country code and the number, no spaces)")

// e164 is the form the import must give: a plus, a country code and up to 15
// digits in all, nothing else. Anything looser (spaces, a national trunk
// zero) would let two spellings of one number age separately.
var e164 = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)

// Parse checks that s (surrounding spaces aside) is a valid E.164 number for
// a real numbering plan and returns it canonical. The error names field and
// does not quote the value.
func Parse(field, s string) (string, error) {
	s = strings.TrimSpace(s)
	if !e164.MatchString(s) {
		return "", fmt.Errorf("%s: %w", field, ErrInvalid)
	}
	n, err := phonenumbers.Parse(s, "")
	if err != nil || !phonenumbers.IsValidNumber(n) {
		return "", fmt.Errorf("%s: %w", field, ErrInvalid)
	}
	out := phonenumbers.Format(n, phonenumbers.E164)
	if out != s {
		return "", fmt.Errorf("%s: %w", field, ErrInvalid)
	}
	return out, nil
}

// Mask shows a number as agents may see it: the country code, the first
// digit of the national number and its last three, e.g. +44 7*** ***456.
// A value that is not E.164 is masked whole.
func Mask(e string) string {
	n, err := phonenumbers.Parse(e, "")
	if err != nil || !e164.MatchString(e) {
		return "***"
	}
	cc := "+" + strconv.Itoa(int(n.GetCountryCode()))
	national := strings.TrimPrefix(e, cc)
	if len(national) < 6 {
		return cc + " ***"
	}
	hidden := len(national) - 4
	first := hidden / 2
	return cc + " " + national[:1] + strings.Repeat("*", first) + " " + strings.Repeat("*", hidden-first) + national[len(national)-3:]
}
