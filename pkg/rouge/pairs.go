package rouge

import "slices"

// pairIndex maps ordered pairs of prefix elements of pool texts to the pool
// texts holding them (the ℓ = 2 prefix scheme): two texts whose overlap is
// >= α >= 2 share their first two shared elements (a, b), a before b in the
// global order, and both lie among the first len-α+2 elements of each text.
// So a candidate looks up every pair of its own prefix elements and finds
// each qualifying pool text through at least one of them, while a pool text
// sharing only one frequent token with it is never touched.
//
// It is an open-addressing hash table from keys to postings, one slot per
// key (24 bytes, so a lookup touches one cache line or two). A key's only
// posting lies in its slot; more lie contiguously in a run in chunks of
// memory: a full run grows in place when it ends the current chunk, else
// moves to its end with twice the room, and the chunks are rewritten
// without the vacated room when it outweighs the live postings. So a lookup
// costs one cache miss for the slot and, with two or more postings, one for
// the run.
type pairIndex struct {
	slots   []pairSlot
	used    int
	chunks  [][]pairPosting
	cur     int           // the chunk that takes new runs, plus one (0: none)
	live    int           // postings in runs
	tmp     []pairPosting // merge
	garbage int           // vacated room in the chunks
}

type pairSlot struct {
	key uint64 // 0 = empty slot
	cnt int32
	// cnt == 1: the posting (doc; m | slack<<16); cnt > 1: the run's
	// location (chunk<<chunkBits | offset) and room
	a, b uint32
	// the run's first sorted postings are in ascending length (stable);
	// later ones are merged in when they come to a quarter of those
	sorted int32
}

// sortMin: runs shorter than this are not sorted (a variable for tests).
var sortMin = 16

// chunkBits: runs lie in chunks of up to 1<<chunkBits postings (longer
// ones in a chunk of their own); a location holds the chunk's index in the
// remaining bits, so an index holds at most maxChunks chunks (4G postings).
const (
	chunkBits = 22
	maxChunks = 1 << (32 - chunkBits)
)

// Variables for tests: runs of more than ownChunk postings get a chunk of
// their own; the chunks are rewritten only when more than gcMin postings'
// room was vacated.
var (
	ownChunk = 1 << chunkBits / 4
	gcMin    = 1 << 16
)

// pairPosting is one pool text under a pair key.
type pairPosting struct {
	doc   int32
	m     uint16
	slack uint8 // max(pa, pb-1) for the pair's positions pa < pb in the text's ordered elements
}

func (sl *pairSlot) single() pairPosting {
	return pairPosting{doc: int32(sl.a), m: uint16(sl.b), slack: uint8(sl.b >> 16)}
}

// maxPairPrefix bounds the extended prefix of pair-indexed texts (so at most
// maxPairPrefix·(maxPairPrefix-1)/2 pairs per text, positions fit a uint8);
// longer prefixes go to the single-element index.
const maxPairPrefix = 24

func pairKey(a, b uint32) uint64 { return (uint64(a)<<32 | uint64(b)) + 1 }

// reset empties the index (the table keeps its size).
func (x *pairIndex) reset() {
	clear(x.slots)
	x.used = 0
	x.chunks, x.cur = nil, 0
	x.live, x.garbage = 0, 0
}

func (x *pairIndex) home(key uint64) int {
	return int((key*0x9E3779B97F4A7C15)>>32) & (len(x.slots) - 1)
}

// touchSlots loads the home slot of each key, so that their cache misses
// overlap (the result only keeps the loads).
func (x *pairIndex) touchSlots(keys []uint64) uint64 {
	if len(x.slots) == 0 {
		return 0
	}
	var t uint64
	for _, k := range keys {
		t += x.slots[x.home(k)].key
	}
	return t
}

// touchRuns loads the first posting of the run of each slot.
func (x *pairIndex) touchRuns(slots []int32) uint64 {
	var t uint64
	for _, i := range slots {
		if sl := &x.slots[i]; sl.cnt > 1 {
			t += uint64(x.runAt(sl.a, 1)[0].doc)
		}
	}
	return t
}

func (x *pairIndex) slot(key uint64) int {
	mask := len(x.slots) - 1
	i := x.home(key)
	for {
		k := x.slots[i].key
		if k == key || k == 0 {
			return i
		}
		i = (i + 1) & mask
	}
}

// find returns the slot of key, or -1.
func (x *pairIndex) find(key uint64) int {
	if len(x.slots) == 0 {
		return -1
	}
	i := x.slot(key)
	if x.slots[i].key == 0 {
		return -1
	}
	return i
}

// insert returns the slot of key, adding the key when absent.
func (x *pairIndex) insert(key uint64) int {
	if 4*(x.used+1) > 3*len(x.slots) { // load <= 3/4
		x.grow()
	}
	i := x.slot(key)
	if sl := &x.slots[i]; sl.key == 0 {
		*sl = pairSlot{key: key}
		x.used++
	}
	return i
}

func (x *pairIndex) grow() {
	old := x.slots
	x.slots = make([]pairSlot, max(1<<12, 2*len(old)))
	for _, sl := range old {
		if sl.key != 0 {
			x.slots[x.slot(sl.key)] = sl
		}
	}
}

// add adds posting p to key.
func (x *pairIndex) add(key uint64, p pairPosting) {
	x.put(x.insert(key), p)
}

// put adds posting p to the key in slot i.
func (x *pairIndex) put(i int, p pairPosting) {
	sl := &x.slots[i]
	switch {
	case sl.cnt == 0:
		sl.a, sl.b = uint32(p.doc), uint32(p.m)|uint32(p.slack)<<16
	case sl.cnt == 1:
		q := sl.single()
		sl.a, sl.b = x.alloc(2), 2
		run := x.runAt(sl.a, 2)
		run[0], run[1] = q, p
		x.live += 2
	default:
		if int(sl.cnt) == int(sl.b) && !x.extend(sl) {
			room := 2 * int(sl.b)
			at := x.alloc(room)
			copy(x.runAt(at, int(sl.cnt)), x.runAt(sl.a, int(sl.cnt)))
			x.garbage += int(sl.b)
			sl.a, sl.b = at, uint32(room)
		}
		x.runAt(sl.a, int(sl.cnt)+1)[sl.cnt] = p
		x.live++
		if n := int(sl.cnt) + 1; n >= sortMin && n-int(sl.sorted) > int(sl.sorted)/4 {
			x.merge(x.runAt(sl.a, n), int(sl.sorted))
			sl.sorted = int32(n)
		}
	}
	sl.cnt++
	if x.garbage > x.live && x.garbage > gcMin || len(x.chunks) >= maxChunks/2 && x.garbage > 0 {
		x.gc()
	}
}

// merge sorts run by length, its first sorted postings being sorted
// already: the rest is sorted (stably) and merged in.
func (x *pairIndex) merge(run []pairPosting, sorted int) {
	tail := run[sorted:]
	slices.SortStableFunc(tail, func(a, b pairPosting) int { return int(a.m) - int(b.m) })
	if sorted == 0 || run[sorted-1].m <= tail[0].m {
		return
	}
	x.tmp = append(x.tmp[:0], run[:sorted]...)
	head := x.tmp
	i, j, k := 0, 0, 0
	for i < len(head) && j < len(tail) {
		if tail[j].m < head[i].m {
			run[k] = tail[j]
			j++
		} else {
			run[k] = head[i]
			i++
		}
		k++
	}
	// what is left of tail is in place already
	copy(run[k:], head[i:])
}

// extend grows the room of the full run of sl in place when it ends the
// current chunk and the chunk has room.
func (x *pairIndex) extend(sl *pairSlot) bool {
	if x.cur == 0 {
		return false
	}
	c := x.chunks[x.cur-1]
	ci, off := int(sl.a>>chunkBits), int(sl.a&(1<<chunkBits-1))
	room := 2 * int(sl.b)
	if ci != x.cur-1 || off+int(sl.b) != len(c) || off+room > cap(c) {
		return false
	}
	x.chunks[x.cur-1] = c[:off+room]
	sl.b = uint32(room)
	return true
}

// alloc returns the location of room for n postings.
func (x *pairIndex) alloc(n int) uint32 {
	if len(x.chunks) == maxChunks {
		panic("rouge: pair index over its capacity") // 2^32 postings, 32 GiB
	}
	if n > ownChunk {
		x.chunks = append(x.chunks, make([]pairPosting, n)) // a chunk of its own
		return uint32(len(x.chunks)-1) << chunkBits
	}
	if x.cur == 0 || cap(x.chunks[x.cur-1])-len(x.chunks[x.cur-1]) < n {
		if x.cur > 0 {
			c := x.chunks[x.cur-1]
			x.garbage += cap(c) - len(c)
		}
		// chunks grow with the index, up to 1<<chunkBits
		x.chunks = append(x.chunks, make([]pairPosting, 0, min(1<<chunkBits, max(1<<12, n, x.live/2))))
		x.cur = len(x.chunks)
	}
	c := x.chunks[x.cur-1]
	x.chunks[x.cur-1] = c[:len(c)+n]
	return uint32(x.cur-1)<<chunkBits | uint32(len(c))
}

// runAt is the n postings at location at.
func (x *pairIndex) runAt(at uint32, n int) []pairPosting { return runIn(x.chunks, at, n) }

// runIn is the n postings at location at of chunks.
func runIn(chunks [][]pairPosting, at uint32, n int) []pairPosting {
	off := int(at & (1<<chunkBits - 1))
	return chunks[at>>chunkBits][off : off+n]
}

// postingsOf returns the postings of slot i (one in the slot itself, copied
// to buf).
func (x *pairIndex) postingsOf(i int, buf *[1]pairPosting) []pairPosting {
	sl := &x.slots[i]
	switch sl.cnt {
	case 0:
		return nil
	case 1:
		buf[0] = sl.single()
		return buf[:]
	}
	return x.runAt(sl.a, int(sl.cnt))
}

// gc rewrites the chunks without the vacated room (each run's room is its
// length).
func (x *pairIndex) gc() {
	old := x.chunks
	x.chunks, x.cur = nil, 0
	for i := range x.slots {
		sl := &x.slots[i]
		if sl.key == 0 || sl.cnt < 2 {
			continue
		}
		at := x.alloc(int(sl.cnt))
		copy(x.runAt(at, int(sl.cnt)), runIn(old, sl.a, int(sl.cnt)))
		sl.a, sl.b = at, uint32(sl.cnt)
	}
	x.garbage = 0
}
