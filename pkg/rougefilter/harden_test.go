package rougefilter

import (
	"bytes"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// --stats counts invalid JSON lines skipped by --skip-bad as read:
// read = kept + dropped + bad.
func TestStatsCountInvalidAsRead(t *testing.T) {
	in := `{"instruction":"write a poem about the sea"}
not json at all
{"instruction":"write a poem about the sea"}
[1,2]
{"instruction":"list three prime numbers"}
{broken
`
	var out, errb bytes.Buffer
	code := Main([]string{"--stats", "--skip-bad"}, strings.NewReader(in), &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	m := regexp.MustCompile(`read (\d+), kept (\d+), dropped (\d+), bad (\d+)`).FindStringSubmatch(errb.String())
	if m == nil {
		t.Fatalf("no summary: %s", errb.String())
	}
	n := make([]int, 4)
	for i := range n {
		n[i], _ = strconv.Atoi(m[i+1])
	}
	if n[0] != 6 || n[1] != 2 || n[2] != 1 || n[3] != 3 || n[0] != n[1]+n[2]+n[3] {
		t.Fatalf("summary %q: want read 6 = kept 2 + dropped 1 + bad 3", m[0])
	}
}

// A lone surrogate escape is invalid Unicode here as in promptfmt: a bad
// record (exit 1, or skipped with --skip-bad), not silently U+FFFD.
func TestLoneSurrogateRefused(t *testing.T) {
	for _, in := range []string{
		`{"instruction":"a\ud800 b c"}`,
		`{"instruction":"a\udc00 b c"}`,
		`{"instruction":"a\ud800\u0041 b c"}`,
	} {
		var out, errb bytes.Buffer
		code := Main(nil, strings.NewReader(in+"\n"), &out, &errb)
		if code != 1 || !strings.Contains(errb.String(), "unpaired surrogate") {
			t.Errorf("%s: exit %d: %s", in, code, errb.String())
		}
	}
	// A proper pair and an escaped backslash before "u" are fine.
	for _, in := range []string{`{"instruction":"smile \ud83d\ude00 now"}`, `{"instruction":"path C:\\ud800 here"}`} {
		var out, errb bytes.Buffer
		if code := Main(nil, strings.NewReader(in+"\n"), &out, &errb); code != 0 || out.Len() == 0 {
			t.Errorf("%s: exit %d: %s", in, code, errb.String())
		}
	}
}

// --threshold NaN is a usage error (it was silently taken).
func TestThresholdNaN(t *testing.T) {
	for _, v := range []string{"NaN", "Inf", "-Inf"} {
		var out, errb bytes.Buffer
		if code := Main([]string{"--threshold", v}, strings.NewReader(""), &out, &errb); code != 2 || !strings.Contains(errb.String(), "--threshold") {
			t.Errorf("%s: exit %d: %s", v, code, errb.String())
		}
	}
}
