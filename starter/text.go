package main

import (
	"strings"

	"github.com/vigil-oss/vigil/internal/textrule"
)

// maxName bounds names and teams, as the server does.
const maxName = 200

// checkText applies Vigil's text rule (the one the server applies) to a
// flag's value before anything is sent, and returns it trimmed. A refusal
// names the flag and the character: "--reason: contains a line break
// (U+000A) at character 5; it must be one line".
func checkText(flagName, value string, opt textrule.Options) (string, error) {
	v, err := textrule.Clean(flagName, value, opt)
	if err != nil {
		if opt.Required && strings.Trim(value, " ") == "" {
			return "", usagef("%s is required", flagName)
		}
		return "", usagef("%v", err)
	}
	return v, nil
}

// checkEmail accepts a bare address as the server does (textrule.Email) and
// returns its canonical form; flagName names it in the refusal.
func checkEmail(flagName, s string) (string, error) {
	s = strings.Trim(s, " ")
	if s == "" {
		return "", usagef("%s is required", flagName)
	}
	addr, err := textrule.Email(flagName, s)
	if err != nil {
		return "", usagef("%v", err)
	}
	return addr.String(), nil
}
