package rouge

// The brute-force reference: rouge_score's algorithm written out plainly
// (O(m·n) dynamic-programming LCS on token strings, F in Python's order of
// operations) and the generator's greedy loop that scores every pool text.

func refLCS(a, b []string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			if a[i-1] == b[j-1] {
				cur[j] = prev[j-1] + 1
			} else {
				cur[j] = max(prev[j], cur[j-1])
			}
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func refScore(pool, cand []string) float64 {
	if len(pool) == 0 || len(cand) == 0 {
		return 0
	}
	l := refLCS(cand, pool)
	p := float64(l) / float64(len(pool))
	r := float64(l) / float64(len(cand))
	if p+r > 0 {
		return 2 * p * r / (p + r)
	}
	return 0
}

type refFilter struct {
	t     float64
	texts []string
	toks  [][]string
}

func (r *refFilter) add(s string) {
	r.texts = append(r.texts, s)
	r.toks = append(r.toks, Tokenize(s))
}

// check returns keep and the best match (highest score, ties: later index).
func (r *refFilter) check(s string, add bool) (bool, Match) {
	c := Tokenize(s)
	best := Match{Index: -1}
	for i, p := range r.toks {
		sc := refScore(p, c)
		if best.Index < 0 || sc >= best.Score {
			best = Match{Text: r.texts[i], Score: sc, Index: i}
		}
	}
	keep := best.Index < 0 || best.Score <= r.t
	if keep && add {
		r.add(s)
	}
	return keep, best
}
