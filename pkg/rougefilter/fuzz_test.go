package rougefilter

import (
	"bytes"
	"strings"
	"testing"
)

// FuzzMain feeds arbitrary input to the command: it must end with 0 or 1,
// never panic, and a failure must be one line on stderr.
func FuzzMain(f *testing.F) {
	f.Add([]byte(`{"instruction":"a b c"}`+"\n"+`{"instruction":"a b c d"}`), false)
	f.Add([]byte(`[{"instruction":"x"},{"instruction":5}]`), true)
	f.Add([]byte(`{"instruction":"İ\u212a"}`+"\n{oops\n"), true)
	f.Add([]byte("\x28\xb5\x2f\xfd garbage"), false)
	f.Fuzz(func(t *testing.T, input []byte, skipBad bool) {
		args := []string{"--threshold", "0.5", "--annotate", "--top-k", "2"}
		if skipBad {
			args = append(args, "--skip-bad")
		}
		var out, errb bytes.Buffer
		code := Main(args, bytes.NewReader(input), &out, &errb)
		if code != 0 && code != 1 {
			t.Fatalf("exit %d: %s", code, errb.String())
		}
		if code == 1 && strings.Count(strings.TrimRight(errb.String(), "\n"), "\n") != 0 {
			t.Fatalf("multi-line error: %q", errb.String())
		}
		if code == 0 && errb.Len() != 0 {
			t.Fatalf("stderr on success: %q", errb.String())
		}
	})
}
