package sentencepiece

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
)

// TrainOptions configures Train. The model written has LLaMA's settings:
// BPE, identity normalizer, dummy prefix, no whitespace removal, byte
// fallback, <unk>=0, <s>=1, </s>=2, no pad.
type TrainOptions struct {
	VocabSize         int      // total pieces, specials and bytes included
	CharacterCoverage float64  // share of characters kept as pieces (rest: bytes); 0 = 0.9995
	MaxPieceLength    int      // in characters; 0 = 16
	SplitDigits       bool     // every digit is its own piece (as LLaMA)
	NoByteFallback    bool     // unknown characters become <unk> instead of bytes
	UserDefined       []string // pieces never split or merged (e.g. "<sep>")
}

// Trainer collects text and learns BPE merges. Memory grows with the
// number of distinct words, not with the size of the corpus.
type Trainer struct {
	opts  TrainOptions
	norm  *normalizer
	words map[string]int64
	buf   []byte
	seqs  int64
}

// NewTrainer checks opts and makes a trainer.
func NewTrainer(opts TrainOptions) (*Trainer, error) {
	if opts.CharacterCoverage == 0 {
		opts.CharacterCoverage = 0.9995
	}
	if opts.CharacterCoverage <= 0 || opts.CharacterCoverage > 1 {
		return nil, fmt.Errorf("character coverage %g must be in (0, 1]", opts.CharacterCoverage)
	}
	if opts.MaxPieceLength == 0 {
		opts.MaxPieceLength = 16
	}
	if opts.MaxPieceLength < 1 {
		return nil, fmt.Errorf("max piece length %d must be positive", opts.MaxPieceLength)
	}
	for _, u := range opts.UserDefined {
		if u == "" || !utf8.ValidString(u) {
			return nil, fmt.Errorf("user-defined symbol %q must be non-empty UTF-8", u)
		}
		if spaceAfterNonSpace(strings.ReplaceAll(u, " ", SpaceSymbol)) {
			return nil, fmt.Errorf("user-defined symbol %q: a space may only start the symbol", u)
		}
	}
	spec := trainNormalizerSpec()
	n, err := newNormalizer(&spec, nil)
	if err != nil {
		return nil, err
	}
	return &Trainer{opts: opts, norm: n, words: map[string]int64{}}, nil
}

func trainNormalizerSpec() NormalizerSpec {
	return NormalizerSpec{Name: "identity", AddDummyPrefix: true, RemoveExtraWhitespaces: false, EscapeWhitespaces: true}
}

// Add adds one sentence (any text; newlines are ordinary characters).
func (t *Trainer) Add(text string) {
	t.seqs++
	t.buf = t.norm.normalize(t.buf[:0], text)
	s := string(t.buf)
	for len(s) > 0 {
		// Cut user-defined symbols out first: they are pieces of their own.
		cut, l := -1, 0
		for _, u := range t.opts.UserDefined {
			eu := strings.ReplaceAll(u, " ", SpaceSymbol)
			if i := strings.Index(s, eu); i >= 0 && (cut < 0 || i < cut || (i == cut && len(eu) > l)) {
				cut, l = i, len(eu)
			}
		}
		if cut < 0 {
			t.addWords(s)
			return
		}
		t.addWords(s[:cut])
		s = s[cut+l:]
	}
}

// charClass groups characters that may share a piece: a piece never spans
// two classes (letters of different scripts, digits, punctuation/symbols).
func charClass(r rune) int {
	switch {
	case r == '\u2581':
		return 1
	case unicode.IsDigit(r):
		return 2
	case unicode.IsLetter(r) || unicode.IsMark(r):
		for i, tab := range scripts {
			if unicode.Is(tab, r) {
				return 10 + i
			}
		}
		return 9
	case unicode.IsSpace(r):
		return 3
	}
	return 4
}

var scripts = []*unicode.RangeTable{unicode.Latin, unicode.Han, unicode.Hiragana, unicode.Katakana, unicode.Cyrillic,
	unicode.Greek, unicode.Arabic, unicode.Hebrew, unicode.Hangul, unicode.Thai, unicode.Devanagari}

// addWords splits normalized text into training words: a run of ▁ goes
// with the next character (except the ▁ run's own whitespace-only part),
// then characters of one class stay together; digits stand alone when
// SplitDigits is set.
func (t *Trainer) addWords(s string) {
	start := 0
	prev := -1 // class of the previous character
	for i, r := range s {
		c := charClass(r)
		split := false
		switch {
		case i == 0:
		case c == 1:
			split = prev != 1 // a new ▁ run starts a new word
		case prev == 1:
			// ▁ run then a character: keep the last ▁ with it.
			if c == 2 && t.opts.SplitDigits {
				split = true
			} else if i-len(SpaceSymbol) > start {
				t.words[s[start:i-len(SpaceSymbol)]]++
				start = i - len(SpaceSymbol)
			}
		case c != prev:
			split = true
		case c == 2 && t.opts.SplitDigits:
			split = true
		}
		if split {
			t.words[s[start:i]]++
			start = i
		}
		prev = c
	}
	if start < len(s) {
		t.words[s[start:]]++
	}
}

// Train learns the merges and returns the serialized .model.
func (t *Trainer) Train() ([]byte, error) {
	opts := t.opts
	nBytes := 256
	if opts.NoByteFallback {
		nBytes = 0
	}
	if len(t.words) == 0 {
		return nil, errors.New("no training text")
	}
	// Characters: count, keep the most frequent up to the coverage.
	charCount := map[rune]int64{}
	var total int64
	for w, n := range t.words {
		for _, r := range w {
			charCount[r] += n
			total += n
		}
	}
	type rc struct {
		r rune
		n int64
	}
	var chars []rc
	for r, n := range charCount {
		chars = append(chars, rc{r, n})
	}
	sort.Slice(chars, func(i, j int) bool {
		if chars[i].n != chars[j].n {
			return chars[i].n > chars[j].n
		}
		return chars[i].r < chars[j].r
	})
	var acc int64
	keep := 0
	for keep < len(chars) {
		if float64(acc)/float64(total) >= opts.CharacterCoverage {
			break
		}
		acc += chars[keep].n
		keep++
	}
	if keep < len(chars) && opts.NoByteFallback && keep == 0 {
		keep = 1
	}
	chars = chars[:keep]
	// The space symbol is always a piece.
	hasSpace := false
	for _, c := range chars {
		hasSpace = hasSpace || c.r == '\u2581'
	}
	if !hasSpace {
		chars = append(chars, rc{'\u2581', 0})
	}

	fixed := 3 + nBytes + len(opts.UserDefined) + len(chars)
	nMerges := opts.VocabSize - fixed
	if nMerges < 0 {
		return nil, fmt.Errorf("vocab size %d is too small: the specials, %d byte pieces, %d user-defined symbols and %d characters already need %d",
			opts.VocabSize, nBytes, len(opts.UserDefined), len(chars), fixed)
	}

	allowed := map[string]bool{}
	for _, c := range chars {
		allowed[string(c.r)] = true
	}
	merges := learnMerges(t.words, allowed, nMerges, opts.MaxPieceLength)

	pieces := []Piece{{"<unk>", 0, Unknown}, {"<s>", 0, Control}, {"</s>", 0, Control}}
	for b := 0; b < nBytes; b++ {
		pieces = append(pieces, Piece{ByteToPiece(byte(b)), 0, Byte})
	}
	seen := map[string]bool{}
	for _, p := range pieces {
		seen[p.Piece] = true
	}
	for _, u := range opts.UserDefined {
		eu := strings.ReplaceAll(u, " ", SpaceSymbol)
		if seen[eu] {
			return nil, fmt.Errorf("user-defined symbol %q is defined twice or clashes with a special piece", u)
		}
		seen[eu] = true
		pieces = append(pieces, Piece{eu, 0, UserDefined})
	}
	score := float32(0)
	for _, m := range merges {
		if seen[m] {
			continue
		}
		seen[m] = true
		pieces = append(pieces, Piece{m, score, Normal})
		score--
	}
	for _, c := range chars {
		s := string(c.r)
		if seen[s] {
			continue
		}
		seen[s] = true
		pieces = append(pieces, Piece{s, score, Normal})
		score--
	}
	return marshalModel(pieces, opts, len(pieces)), nil
}

// Words returns the number of distinct training words so far.
func (t *Trainer) Words() int { return len(t.words) }

// Sentences returns the number of sentences added.
func (t *Trainer) Sentences() int64 { return t.seqs }

// marshalModel writes a ModelProto.
func marshalModel(pieces []Piece, opts TrainOptions, vocab int) []byte {
	var b []byte
	for _, p := range pieces {
		var pb []byte
		pb = protowire.AppendTag(pb, 1, protowire.BytesType)
		pb = protowire.AppendString(pb, p.Piece)
		pb = protowire.AppendTag(pb, 2, protowire.Fixed32Type)
		pb = protowire.AppendFixed32(pb, math.Float32bits(p.Score))
		if p.Type != Normal {
			pb = protowire.AppendTag(pb, 3, protowire.VarintType)
			pb = protowire.AppendVarint(pb, uint64(p.Type))
		}
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendBytes(b, pb)
	}
	varint := func(dst []byte, num protowire.Number, v int64) []byte {
		dst = protowire.AppendTag(dst, num, protowire.VarintType)
		return protowire.AppendVarint(dst, uint64(v))
	}
	boolv := func(v bool) int64 {
		if v {
			return 1
		}
		return 0
	}
	var ts []byte
	ts = protowire.AppendTag(ts, 2, protowire.BytesType)
	ts = protowire.AppendString(ts, "alpaca-go")
	ts = varint(ts, 3, int64(BPE))
	ts = varint(ts, 4, int64(vocab))
	ts = protowire.AppendTag(ts, 10, protowire.Fixed32Type)
	ts = protowire.AppendFixed32(ts, math.Float32bits(float32(opts.CharacterCoverage)))
	ts = varint(ts, 20, int64(opts.MaxPieceLength))
	ts = varint(ts, 25, boolv(opts.SplitDigits))
	ts = varint(ts, 35, boolv(!opts.NoByteFallback))
	ts = varint(ts, 40, 0)
	ts = varint(ts, 41, 1)
	ts = varint(ts, 42, 2)
	ts = varint(ts, 43, -1)
	b = protowire.AppendTag(b, 2, protowire.BytesType)
	b = protowire.AppendBytes(b, ts)

	ns := trainNormalizerSpec()
	var nb []byte
	nb = protowire.AppendTag(nb, 1, protowire.BytesType)
	nb = protowire.AppendString(nb, ns.Name)
	nb = protowire.AppendTag(nb, 2, protowire.BytesType)
	nb = protowire.AppendBytes(nb, nil)
	nb = varint(nb, 3, boolv(ns.AddDummyPrefix))
	nb = varint(nb, 4, boolv(ns.RemoveExtraWhitespaces))
	nb = varint(nb, 5, boolv(ns.EscapeWhitespaces))
	b = protowire.AppendTag(b, 3, protowire.BytesType)
	b = protowire.AppendBytes(b, nb)
	return b
}
