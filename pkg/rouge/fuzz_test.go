package rouge

import (
	"math"
	"regexp"
	"strings"
	"testing"
)

var nonAlnum = regexp.MustCompile(`[^a-z0-9]+`)

// pyTokenize is rouge_score's tokenizer transcribed with regexp, using a
// lower() that agrees with Python's on every code point that can lower into
// [a-z0-9] (see lower_ascii.jsonl); other code points stay non-ASCII under
// either lower-casing, so keeping them unchanged is equivalent.
func pyTokenize(s string) []string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= 'A' && r <= 'Z':
			b.WriteRune(r + 32)
		case r == '\u0130':
			b.WriteString("i\u0307")
		case r == '\u212A':
			b.WriteByte('k')
		default:
			b.WriteRune(r)
		}
	}
	return strings.Fields(nonAlnum.ReplaceAllString(b.String(), " "))
}

func FuzzTokenize(f *testing.F) {
	for _, s := range []string{"", "Hello, World!", "İstanbul \u212a", "a\xffb", "ＡＢＣ 123"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, want := Tokenize(s), pyTokenize(s)
		if strings.Join(got, "|") != strings.Join(want, "|") || len(got) != len(want) {
			t.Fatalf("Tokenize(%q) = %q, want %q", s, got, want)
		}
	})
}

// FuzzFilter decodes the input into a stream of short texts over a tiny
// vocabulary (so near-duplicates are common) and a threshold, then compares
// the filter's decisions with the brute-force reference.
func FuzzFilter(f *testing.F) {
	f.Add([]byte("\x07abcabd\x00abcab\x00bca\x00aaaa\x00ab"), uint8(70))
	f.Add([]byte("hello world\x00hello there world\x00world hello"), uint8(50))
	f.Add([]byte("\x01\x02\x03\x00\x03\x02\x01\x00\x01\x03"), uint8(30))
	f.Fuzz(func(t *testing.T, data []byte, th uint8) {
		threshold := float64(th%110) / 100
		defer indexKnobs(len(data))()
		var texts []string
		for _, chunk := range strings.Split(string(data), "\x00") {
			var w []string
			for _, c := range []byte(chunk) {
				w = append(w, string(rune('a'+c%7)))
			}
			texts = append(texts, strings.Join(w, " "))
		}
		ref := &refFilter{t: threshold}
		fast := NewFilter(threshold)
		batch := NewFilter(threshold)
		fast.ExactBest, batch.ExactBest = true, true
		seeds := len(texts) / 4
		for _, s := range texts[:seeds] {
			ref.add(s)
			fast.Add(s)
			batch.Add(s)
		}
		res := batch.CheckBatch(texts[seeds:], true, 2)
		for i, s := range texts[seeds:] {
			rk, rb := ref.check(s, true)
			fk, fb := fast.Check(s, true)
			if rk != fk || rk != res[i].Keep {
				t.Fatalf("threshold %v text %q: reference keep %v (best %+v), filter %v, batch %v", threshold, s, rk, rb, fk, res[i].Keep)
			}
			if !rk && (fb != rb || res[i].Best != rb) {
				t.Fatalf("best %+v / %+v, want %+v", fb, res[i].Best, rb)
			}
		}
	})
}

// FuzzSimilar decodes the input into short texts over a tiny vocabulary (so
// most pool texts share tokens, and repeated tokens abound) and checks
// SimilarAt against scoring every pool text: the top-k and the mean, bit for
// bit.
func FuzzSimilar(f *testing.F) {
	f.Add([]byte("\x07abcabd\x00abcab\x00bca\x00aaaa\x00ab\x00\x00zz"), uint8(3))
	f.Add([]byte("hello world\x00hello there world\x00world hello"), uint8(10))
	f.Fuzz(func(t *testing.T, data []byte, k uint8) {
		var texts []string
		for _, chunk := range strings.Split(string(data), "\x00") {
			var w []string
			for _, c := range []byte(chunk) {
				if c%9 == 8 {
					w = append(w, "!") // no token
				} else {
					w = append(w, string(rune('a'+c%9)))
				}
			}
			texts = append(texts, strings.Join(w, " "))
		}
		flt := NewFilter(0.7)
		var pool [][]string
		for i, q := range texts {
			top, avg := flt.SimilarAt(q, int(k%12), i)
			c := Tokenize(q)
			scores := make([]float64, len(pool))
			for j, p := range pool {
				scores[j] = refScore(p, c)
			}
			if want := Mean(scores); math.Float64bits(avg) != math.Float64bits(want) {
				t.Fatalf("text %d: avg %v want %v", i, avg, want)
			}
			used := make([]bool, len(scores))
			for r, m := range top {
				bi := -1
				for j := len(scores) - 1; j >= 0; j-- {
					if !used[j] && (bi < 0 || scores[j] > scores[bi]) {
						bi = j
					}
				}
				used[bi] = true
				if m.Index != bi || m.Score != scores[bi] || m.Text != texts[bi] {
					t.Fatalf("text %d rank %d: %+v, want index %d score %v", i, r, m, bi, scores[bi])
				}
			}
			if len(top) != min(int(k%12), len(scores)) {
				t.Fatalf("text %d: %d matches, want %d", i, len(top), min(int(k%12), len(scores)))
			}
			flt.Add(q)
			pool = append(pool, c)
		}
	})
}
