// Package rouge computes ROUGE-L exactly as Google's rouge_score package does
// (RougeScorer(["rougeL"], use_stemmer=False)) and filters streams of texts
// greedily by ROUGE-L similarity, as the Stanford Alpaca / self-instruct
// generator does, but fast: tokens are interned to integer ids, most pairs
// are pruned by exact upper bounds (length and a prefix-filtered inverted
// index) and the rest are scored with a bit-parallel LCS.
//
// Scores are bit-for-bit the float64 values Python computes, so records whose
// score lies on the threshold fall on the same side as in the original.
package rouge

import "unicode/utf8"

// Tokenize splits s into tokens exactly like rouge_score's tokenizer without
// stemming: Python's str.lower(), then every run of characters outside
// [a-z0-9] becomes a space, split on whitespace, keep tokens matching
// ^[a-z0-9]+$. The result is the maximal runs of [a-z0-9] in the lower-cased
// text.
//
// Only three kinds of code points lower-case into [a-z0-9] under Python's
// full Unicode lower-casing: ASCII letters and digits, U+212A KELVIN SIGN
// (lowers to "k") and U+0130 LATIN CAPITAL LETTER I WITH DOT ABOVE (lowers to
// "i" followed by U+0307 COMBINING DOT ABOVE, which ends the token). Every
// other code point lowers to characters outside ASCII and so separates
// tokens. scripts/fixtures/rouge_tokens.py checks this claim for every code
// point and writes the test fixture.
func Tokenize(s string) []string {
	var out []string
	scan(s, func(tok []byte) { out = append(out, string(tok)) })
	return out
}

// scan calls fn with each token of s; tok is only valid during the call.
func scan(s string, fn func(tok []byte)) {
	var buf [64]byte
	tok := buf[:0]
	flush := func() {
		if len(tok) > 0 {
			fn(tok)
			tok = tok[:0]
		}
	}
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
				tok = append(tok, c)
			case 'A' <= c && c <= 'Z':
				tok = append(tok, c+('a'-'A'))
			default:
				flush()
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		switch r {
		case '\u212A': // KELVIN SIGN -> "k"
			tok = append(tok, 'k')
		case '\u0130': // "İ" -> "i" + U+0307, which ends the token
			tok = append(tok, 'i')
			flush()
		default:
			flush()
		}
	}
	flush()
}
