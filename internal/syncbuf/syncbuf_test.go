package syncbuf

import (
	"fmt"
	"strings"
	"sync"
	"testing"
)

func TestBufferKeepsEveryConcurrentWrite(t *testing.T) {
	tests := []struct {
		name    string
		writers int
		lines   int
	}{
		{"no writer", 0, 0},
		{"one writer", 1, 10},
		{"many writers", 8, 50},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf Buffer
			var wg sync.WaitGroup
			for w := range tc.writers {
				wg.Go(func() {
					for i := range tc.lines {
						fmt.Fprintf(&buf, "w%d l%d\n", w, i)
						_ = buf.String() // reads race with writes unless guarded
					}
				})
			}
			wg.Wait()
			got := buf.String()
			if n := strings.Count(got, "\n"); n != tc.writers*tc.lines {
				t.Fatalf("%d lines, want %d", n, tc.writers*tc.lines)
			}
			for w := range tc.writers {
				for i := range tc.lines {
					if !strings.Contains(got, fmt.Sprintf("w%d l%d\n", w, i)) {
						t.Errorf("line w%d l%d missing", w, i)
					}
				}
			}
		})
	}
}
