package phone

import (
	"errors"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"+447911123456", "+447911123456", true},
		{" +14155550123 ", "+14155550123", true},
		{"+4915123456789", "+4915123456789", true},
		{"447911123456", "", false},    // no plus
		{"+44 7911 123456", "", false}, // spaces
		{"+4407911123456", "", false},  // national trunk zero
		{"+0447911123456", "", false},  // no country code 0
		{"+999123456789", "", false},   // no such plan
		{"+4479111234564567", "", false},
		{"", "", false},
		{"+44791112345a", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := Parse("phones[0]", tt.in)
			if tt.ok {
				if err != nil || got != tt.want {
					t.Fatalf("Parse(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
				}
				return
			}
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Parse(%q) = %q, %v; want ErrInvalid", tt.in, got, err)
			}
			if !strings.HasPrefix(err.Error(), "phones[0]: ") {
				t.Errorf("error %q does not name the field", err)
			}
			if tt.in != "" && strings.Contains(err.Error(), strings.TrimSpace(tt.in)) {
				t.Errorf("error %q quotes the value", err)
			}
		})
	}
}

func TestMask(t *testing.T) {
	tests := []struct{ in, want string }{
		{"+447911123456", "+44 7*** ***456"},
		{"+14155550123", "+1 4*** ***123"},
		{"+4915123456789", "+49 1*** ****789"},
		{"junk", "***"},
	}
	for _, tt := range tests {
		got := Mask(tt.in)
		if got != tt.want {
			t.Errorf("Mask(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if len(tt.in) > 6 && strings.Contains(got, tt.in[len(tt.in)-6:]) {
			t.Errorf("Mask(%q) = %q shows more than the last three digits", tt.in, got)
		}
	}
}
