package tokenize

import (
	"strings"
	"testing"
)

// A record that is not an object gets one message (it was printed twice,
// once per field), and a lone surrogate escape is refused as in promptfmt,
// in the main command and in encode.
func TestBadRecordMessages(t *testing.T) {
	_, stderr, code := run(t, "[1,2]\n", "--model", testModel, "--quiet")
	if code != 1 || strings.Count(stderr, "not a JSON object") != 1 {
		t.Fatalf("exit %d: %q", code, stderr)
	}
	for _, in := range []string{
		`{"prompt":"a\ud800","completion":"b"}`,
		`{"prompt":"a","completion":"b\udfff"}`,
	} {
		out, stderr, code := run(t, in+"\n", "--model", testModel, "--quiet")
		if code != 1 || !strings.Contains(stderr, "unpaired surrogate") || out != "" {
			t.Errorf("%s: exit %d: %q", in, code, stderr)
		}
	}
	_, stderr, code = run(t, `{"text":"x\ud800"}`+"\n", "encode", "--model", testModel, "--field", "text")
	if code != 1 || !strings.Contains(stderr, "unpaired surrogate") {
		t.Errorf("encode: exit %d: %q", code, stderr)
	}
	// A proper pair still works.
	if _, stderr, code := run(t, `{"prompt":"a \ud83d\ude00","completion":"b"}`+"\n", "--model", testModel, "--quiet"); code != 0 {
		t.Errorf("pair: exit %d: %q", code, stderr)
	}
}
