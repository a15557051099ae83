package sentencepiece

import "sync"

// The BPE encoder follows SentencePiece's bpe::Model::Encode:
//
//  1. the normalized text is split into symbols: a user-defined piece
//     (longest match, never merged further) or one UTF-8 character;
//  2. every adjacent pair whose concatenation is a vocabulary piece
//     (normal, user-defined or unused) is a candidate; the candidate with
//     the highest piece score is merged, ties going to the leftmost pair;
//     new candidates with the neighbours are added; repeat until none is
//     left;
//  3. unused pieces are split back into the two halves that made them;
//  4. each symbol maps to its id (reserved pieces first); an unknown symbol
//     becomes its UTF-8 bytes as <0xNN> pieces with byte fallback, else a
//     run of unknown symbols becomes one unknown id.
//
// Speed: when no piece contains a non-▁ character followed by ▁ (true for
// every model trained with split_by_whitespace, LLaMA's included), no merge
// can cross the start of a word ("▁" after a non-▁ character), so words are
// encoded separately and their ids are cached per Encoder.

// Encoder encodes text with a model and keeps a cache of encoded words.
// It is not safe for concurrent use; make one per goroutine (Model.Encode
// uses a pool of them).
type Encoder struct {
	m     *Model
	norm  []byte
	syms  []symbol
	heap  pairHeap
	cache map[string]span
	arena []int32
	rev   map[string][2]string // unused-piece resegmentation
}

type span struct{ off, n int32 }

type symbol struct {
	start, end int32 // byte range in the text being merged
	prev, next int32
	freeze     bool
}

type pair struct {
	score       float32
	left, right int32
	size        int32
}

// cache limits: words longer than maxCachedWord bytes are not cached; the
// cache is dropped when it holds more than maxCacheIDs ids or entries.
const (
	maxCachedWord  = 256
	maxCacheIDs    = 1 << 22
	maxCacheWords  = 1 << 18
	longWordDirect = 1 << 16
)

// NewEncoder makes an encoder for m.
func (m *Model) NewEncoder() *Encoder {
	return &Encoder{m: m, cache: make(map[string]span)}
}

var encoderPools sync.Map // *Model -> *sync.Pool

func (m *Model) pool() *sync.Pool {
	if p, ok := encoderPools.Load(m); ok {
		return p.(*sync.Pool)
	}
	p, _ := encoderPools.LoadOrStore(m, &sync.Pool{New: func() any { return m.NewEncoder() }})
	return p.(*sync.Pool)
}

// Encode returns the ids of text, as spm_encode --output_format=id.
// It is safe for concurrent use.
func (m *Model) Encode(text string) []int32 {
	p := m.pool()
	e := p.Get().(*Encoder)
	ids := e.Append(nil, text)
	p.Put(e)
	return ids
}

// EncodePieces returns the pieces of text, as spm_encode --output_format=piece.
func (m *Model) EncodePieces(text string) []string {
	ids := m.Encode(text)
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = m.Pieces[id].Piece
	}
	return out
}

// Encode returns the ids of text.
func (e *Encoder) Encode(text string) []int32 { return e.Append(nil, text) }

// Append appends the ids of text to dst.
func (e *Encoder) Append(dst []int32, text string) []int32 {
	return e.append(dst, text, e.m.Normalizer.AddDummyPrefix)
}

// AppendContinuation appends the ids of text encoded as the continuation
// of earlier text: without the dummy ▁ prefix the model may add.
func (e *Encoder) AppendContinuation(dst []int32, text string) []int32 {
	return e.append(dst, text, false)
}

func (e *Encoder) append(dst []int32, text string, dummy bool) []int32 {
	m := e.m
	e.norm = m.norm.normalizeOpt(e.norm[:0], text, dummy)
	s := e.norm
	if len(s) == 0 {
		return dst
	}
	start := len(dst)
	if !m.splitAtWS {
		dst = e.encodeRun(dst, s)
	} else {
		// Words start at a ▁ that follows a non-▁ character.
		w := 0
		prevSpace := true
		for i := 0; i < len(s); {
			if i+2 < len(s) && s[i] == 0xE2 && s[i+1] == 0x96 && s[i+2] == 0x81 {
				if !prevSpace {
					dst = e.word(dst, s[w:i])
					w = i
				}
				prevSpace = true
				i += 3
				continue
			}
			prevSpace = false
			i += charLen(s[i], len(s)-i)
		}
		dst = e.word(dst, s[w:])
	}
	if !m.Trainer.ByteFallback {
		// A run of unknown symbols is one unknown id.
		unk := m.unk
		out := start
		for i := start; i < len(dst); i++ {
			if dst[i] == unk && out > start && dst[out-1] == unk {
				continue
			}
			dst[out] = dst[i]
			out++
		}
		dst = dst[:out]
	}
	return dst
}

// charLen is SentencePiece's OneCharLen, capped by the bytes left.
func charLen(c byte, left int) int {
	n := 1
	switch {
	case c >= 0xF0 && c < 0xF8:
		n = 4
	case c >= 0xE0 && c < 0xF0:
		n = 3
	case c >= 0xC0 && c < 0xE0:
		n = 2
	}
	if n > left {
		n = left
	}
	return n
}

// word encodes one word, through the cache.
func (e *Encoder) word(dst []int32, w []byte) []int32 {
	if len(w) > maxCachedWord {
		return e.encodeRun(dst, w)
	}
	if sp, ok := e.cache[string(w)]; ok {
		return append(dst, e.arena[sp.off:sp.off+sp.n]...)
	}
	start := len(dst)
	dst = e.encodeRun(dst, w)
	if len(e.cache) >= maxCacheWords || len(e.arena)+len(dst)-start > maxCacheIDs {
		clear(e.cache)
		e.arena = e.arena[:0]
	}
	e.cache[string(w)] = span{int32(len(e.arena)), int32(len(dst) - start)}
	e.arena = append(e.arena, dst[start:]...)
	return dst
}

// encodeRun runs BPE over s (normalized text) and appends the ids.
func (e *Encoder) encodeRun(dst []int32, s []byte) []int32 {
	m := e.m
	syms := e.syms[:0]
	for i := 0; i < len(s); {
		l := 0
		freeze := false
		if m.norm.user != nil {
			if l = m.norm.user.match(string(s[i:])); l > 0 {
				freeze = true
			}
		}
		if l == 0 {
			l = charLen(s[i], len(s)-i)
		}
		n := int32(len(syms))
		syms = append(syms, symbol{start: int32(i), end: int32(i + l), prev: n - 1, next: n + 1, freeze: freeze})
		i += l
	}
	syms[len(syms)-1].next = -1
	e.syms = syms

	if len(syms) > 1 {
		h := e.heap[:0]
		if m.hasUnused {
			if e.rev == nil {
				e.rev = map[string][2]string{}
			}
			clear(e.rev)
		}
		maxLen := int32(m.maxPieceLen)
		add := func(l, r int32) {
			if l < 0 || r < 0 || syms[l].freeze || syms[r].freeze {
				return
			}
			size := syms[r].end - syms[l].start
			if size > maxLen {
				return
			}
			id, ok := m.pieceIDs[string(s[syms[l].start:syms[r].end])]
			if !ok {
				return
			}
			h.push(pair{score: m.Pieces[id].Score, left: l, right: r, size: size})
			if m.hasUnused && m.Pieces[id].Type == Unused {
				e.rev[string(s[syms[l].start:syms[r].end])] = [2]string{
					string(s[syms[l].start:syms[l].end]), string(s[syms[r].start:syms[r].end])}
			}
		}
		for i := int32(1); i < int32(len(syms)); i++ {
			add(i-1, i)
		}
		for len(h) > 0 {
			top := h.pop()
			l, r := &syms[top.left], &syms[top.right]
			if l.start == l.end || r.start == r.end || (l.end-l.start)+(r.end-r.start) != top.size {
				continue // stale
			}
			l.end = r.end
			l.next = r.next
			if r.next >= 0 {
				syms[r.next].prev = top.left
			}
			r.start, r.end = 0, 0
			add(l.prev, top.left)
			add(top.left, l.next)
		}
		e.heap = h[:0]
	}

	for i := int32(0); i >= 0; i = syms[i].next {
		dst = e.emit(dst, string(s[syms[i].start:syms[i].end]))
	}
	return dst
}

// emit appends the id(s) of one final symbol.
func (e *Encoder) emit(dst []int32, piece string) []int32 {
	m := e.m
	id := m.PieceToID(piece)
	if m.hasUnused && m.Pieces[id].Type == Unused {
		if halves, ok := e.rev[piece]; ok {
			dst = e.emit(dst, halves[0])
			return e.emit(dst, halves[1])
		}
	}
	if id == m.unk && m.Trainer.ByteFallback {
		for i := 0; i < len(piece); i++ {
			dst = append(dst, m.byteIDs[piece[i]])
		}
		return dst
	}
	return append(dst, id)
}

// pairHeap is a max-heap on (score, then smaller left index).
type pairHeap []pair

func (a pair) before(b pair) bool {
	return a.score > b.score || (a.score == b.score && a.left < b.left)
}

func (h *pairHeap) push(p pair) {
	*h = append(*h, p)
	a := *h
	i := len(a) - 1
	for i > 0 {
		parent := (i - 1) / 2
		if !a[i].before(a[parent]) {
			break
		}
		a[i], a[parent] = a[parent], a[i]
		i = parent
	}
}

func (h *pairHeap) pop() pair {
	a := *h
	top := a[0]
	n := len(a) - 1
	a[0] = a[n]
	a = a[:n]
	i := 0
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		best := l
		if r := l + 1; r < n && a[r].before(a[l]) {
			best = r
		}
		if !a[best].before(a[i]) {
			break
		}
		a[i], a[best] = a[best], a[i]
		i = best
	}
	*h = a
	return top
}
