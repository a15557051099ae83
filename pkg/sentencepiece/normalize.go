package sentencepiece

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"strings"
	"unicode/utf8"
)

// normalizer applies a NormalizerSpec the way SentencePiece's Normalizer
// does: user-defined symbols pass through, the rest goes through the
// precompiled character map (longest match) or is copied one character at a
// time (invalid UTF-8 becomes U+FFFD, one byte at a time); leading,
// trailing and repeated spaces are dropped when remove_extra_whitespaces is
// on; a dummy ▁ is prepended when add_dummy_prefix is on; spaces become ▁
// when escape_whitespaces is on.
type normalizer struct {
	spec     *NormalizerSpec
	trie     []uint32 // darts-clone double array; nil for identity
	blob     []byte   // normalized strings, NUL-terminated
	user     *prefixMatcher
	identity bool // no character map: the fast path applies
}

const replacementChar = "\uFFFD"

func newNormalizer(spec *NormalizerSpec, userDefined []string) (*normalizer, error) {
	n := &normalizer{spec: spec}
	if len(userDefined) > 0 {
		n.user = newPrefixMatcher(userDefined)
	}
	cm := spec.PrecompiledCharsmap
	if len(cm) == 0 {
		if spec.NormalizationRuleTSV != "" {
			return nil, errors.New("normalizer has rules but no precompiled character map (not supported)")
		}
		n.identity = true
		return n, nil
	}
	if len(cm) < 4 {
		return nil, errors.New("normalizer: precompiled character map is too short")
	}
	size := binary.LittleEndian.Uint32(cm)
	if size%4 != 0 || uint64(size) > uint64(len(cm)-4) || size == 0 {
		return nil, fmt.Errorf("normalizer %q: corrupt precompiled character map (trie size %d of %d bytes)", spec.Name, size, len(cm))
	}
	n.trie = make([]uint32, size/4)
	for i := range n.trie {
		n.trie[i] = binary.LittleEndian.Uint32(cm[4+4*i:])
	}
	n.blob = cm[4+size:]
	return n, nil
}

// longestMatch returns the length of the longest key of the character map
// that prefixes s and the normalized replacement, or 0.
func (n *normalizer) longestMatch(s string) (int, string) {
	t := n.trie
	// darts-clone unit layout: has_leaf = bit 8; value = low 31 bits;
	// label = bit 31 | low 8 bits; offset = (u >> 10) << ((u & (1<<9)) >> 6).
	offset := func(u uint32) uint32 { return (u >> 10) << ((u & (1 << 9)) >> 6) }
	pos := offset(t[0])
	best, bestVal := 0, uint32(0)
	for i := 0; i < len(s); i++ {
		c := uint32(s[i])
		pos ^= c
		if pos >= uint32(len(t)) {
			break
		}
		u := t[pos]
		if u&(1<<31|0xFF) != c {
			break
		}
		pos ^= offset(u)
		if (u>>8)&1 == 1 {
			if pos >= uint32(len(t)) {
				break
			}
			best, bestVal = i+1, t[pos]&(1<<31-1)
		}
	}
	if best == 0 {
		return 0, ""
	}
	if int(bestVal) >= len(n.blob) {
		return 0, ""
	}
	rep := n.blob[bestVal:]
	if e := indexByte(rep, 0); e >= 0 {
		rep = rep[:e]
	}
	return best, string(rep)
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}

// prefix normalizes the first unit of s: it returns the normalized text
// and how many bytes of s it consumed.
func (n *normalizer) prefix(s string) (string, int) {
	if n.user != nil {
		if l := n.user.match(s); l > 0 {
			return s[:l], l
		}
	}
	if n.trie != nil {
		if l, rep := n.longestMatch(s); l > 0 {
			return rep, l
		}
	}
	r, l := utf8.DecodeRuneInString(s)
	if r == utf8.RuneError && l <= 1 {
		return replacementChar, 1
	}
	return s[:l], l
}

// normalize appends the normalized form of s to dst.
func (n *normalizer) normalize(dst []byte, s string) []byte {
	return n.normalizeOpt(dst, s, n.spec.AddDummyPrefix)
}

// normalizeOpt is normalize with the dummy prefix on or off.
func (n *normalizer) normalizeOpt(dst []byte, s string, dummy bool) []byte {
	spec := n.spec
	if len(s) == 0 {
		return dst
	}
	if n.identity && !spec.RemoveExtraWhitespaces {
		return n.normalizeIdentity(dst, s, dummy)
	}
	if spec.RemoveExtraWhitespaces {
		for len(s) > 0 {
			p, l := n.prefix(s)
			if p != " " {
				break
			}
			s = s[l:]
		}
		if len(s) == 0 {
			return dst
		}
	}
	start := len(dst)
	ws := " "
	if spec.EscapeWhitespaces {
		ws = SpaceSymbol
	}
	if dummy {
		dst = append(dst, ws...)
	}
	prevSpace := spec.RemoveExtraWhitespaces
	for len(s) > 0 {
		p, l := n.prefix(s)
		if prevSpace {
			p = strings.TrimLeft(p, " ")
		}
		if len(p) > 0 {
			for i := 0; i < len(p); i++ {
				if p[i] == ' ' && spec.EscapeWhitespaces {
					dst = append(dst, SpaceSymbol...)
				} else {
					dst = append(dst, p[i])
				}
			}
			prevSpace = p[len(p)-1] == ' '
		}
		s = s[l:]
		if !spec.RemoveExtraWhitespaces {
			prevSpace = false
		}
	}
	if spec.RemoveExtraWhitespaces {
		for len(dst)-start >= len(ws) && string(dst[len(dst)-len(ws):]) == ws {
			dst = dst[:len(dst)-len(ws)]
		}
	}
	return dst
}

// normalizeIdentity is normalize for the identity map without whitespace
// removal (the LLaMA settings): dummy prefix, spaces escaped, invalid UTF-8
// replaced.
func (n *normalizer) normalizeIdentity(dst []byte, s string, dummy bool) []byte {
	esc := n.spec.EscapeWhitespaces
	if dummy {
		if esc {
			dst = append(dst, SpaceSymbol...)
		} else {
			dst = append(dst, ' ')
		}
	}
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c == ' ' && esc {
				dst = append(dst, SpaceSymbol...)
			} else {
				dst = append(dst, c)
			}
			i++
			continue
		}
		r, l := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && l <= 1 {
			dst = append(dst, replacementChar...)
			i++
			continue
		}
		dst = append(dst, s[i:i+l]...)
		i += l
	}
	return dst
}

// Normalize returns the normalized form of s as the model's encoder sees it
// (with ▁ for spaces and the dummy prefix).
func (m *Model) Normalize(s string) string { return string(m.norm.normalize(nil, s)) }

// prefixMatcher finds the longest user-defined symbol at the start of a
// string.
type prefixMatcher struct {
	byFirst map[byte][]string // longest first
}

func newPrefixMatcher(syms []string) *prefixMatcher {
	pm := &prefixMatcher{byFirst: map[byte][]string{}}
	for _, s := range syms {
		pm.byFirst[s[0]] = append(pm.byFirst[s[0]], s)
	}
	for _, l := range pm.byFirst {
		sort.Slice(l, func(i, j int) bool { return len(l[i]) > len(l[j]) })
	}
	return pm
}

// match returns the length of the longest symbol prefixing s, or 0.
func (pm *prefixMatcher) match(s string) int {
	if len(s) == 0 {
		return 0
	}
	for _, sym := range pm.byFirst[s[0]] {
		if strings.HasPrefix(s, sym) {
			return len(sym)
		}
	}
	return 0
}
