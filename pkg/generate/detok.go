package generate

import (
	"strings"
	"unicode/utf8"

	"github.com/alpaca-go/alpaca/pkg/sentencepiece"
)

// detok turns generated ids into text incrementally: it only releases
// complete UTF-8 (a character spread over byte-fallback pieces comes out
// once all its bytes are there), holds back text that may be the start of
// a stop string, and finds stop strings. The completion is decoded on its
// own, so its first piece loses the word-start space as in Hugging Face's
// decode of the generated ids.
type detok struct {
	tok     *sentencepiece.Model
	stops   []string
	ids     []int32
	text    string // decoded text of ids (complete characters only)
	emitted int    // bytes of text already released
	stopped bool
}

func newDetok(tok *sentencepiece.Model, stops []string) *detok {
	var st []string
	for _, s := range stops {
		if s != "" {
			st = append(st, s)
		}
	}
	return &detok{tok: tok, stops: st}
}

// push adds one id and returns the text that became final. stop is true
// when a stop string appeared: the text up to it has been released and
// the completion ends.
func (d *detok) push(id int32) (delta string, stop bool) {
	d.ids = append(d.ids, id)
	// leave out a trailing run of byte pieces that does not end a character
	n := len(d.ids)
	k := n
	for k > 0 && d.isByte(d.ids[k-1]) {
		k--
	}
	if k < n {
		var bs []byte
		for _, b := range d.ids[k:] {
			bs = append(bs, d.byteOf(b))
		}
		n -= incompleteTail(bs)
	}
	text, err := d.tok.Decode(d.ids[:n])
	if err != nil {
		return "", false
	}
	d.text = text
	return d.release(false)
}

// finish returns the rest of the text (including a partial character,
// decoded as U+FFFD) at the end of the completion.
func (d *detok) finish() string {
	if d.stopped {
		return ""
	}
	if text, err := d.tok.Decode(d.ids); err == nil {
		d.text = text
	}
	s, _ := d.release(true)
	return s
}

func (d *detok) release(final bool) (string, bool) {
	if d.emitted > len(d.text) {
		d.emitted = len(d.text)
	}
	// find the earliest stop string that may start after released text
	from := d.emitted
	for _, s := range d.stops {
		from = min(from, max(0, d.emitted-len(s)+1))
	}
	best := -1
	for _, s := range d.stops {
		if i := strings.Index(d.text[from:], s); i >= 0 && (best < 0 || from+i < best) {
			best = from + i
		}
	}
	if best >= 0 {
		out := ""
		if best > d.emitted {
			out = d.text[d.emitted:best]
		}
		d.emitted = len(d.text)
		d.stopped = true
		return out, true
	}
	end := len(d.text)
	if !final {
		// hold back a suffix that could begin a stop string
		for _, s := range d.stops {
			for l := min(len(s)-1, end-d.emitted); l > 0; l-- {
				if strings.HasSuffix(d.text, s[:l]) {
					end = min(end, len(d.text)-l)
					break
				}
			}
		}
	}
	if end <= d.emitted {
		return "", false
	}
	out := d.text[d.emitted:end]
	d.emitted = end
	return out, false
}

// text released so far.
func (d *detok) released() string { return d.text[:d.emitted] }

func (d *detok) isByte(id int32) bool {
	return int(id) < len(d.tok.Pieces) && d.tok.Pieces[id].Type == sentencepiece.Byte
}

func (d *detok) byteOf(id int32) byte {
	p := d.tok.Pieces[id].Piece // <0xAB>
	if len(p) != 6 {
		return 0
	}
	var v byte
	for _, c := range p[3:5] {
		v <<= 4
		switch {
		case c >= '0' && c <= '9':
			v |= byte(c - '0')
		case c >= 'A' && c <= 'F':
			v |= byte(c - 'A' + 10)
		case c >= 'a' && c <= 'f':
			v |= byte(c - 'a' + 10)
		}
	}
	return v
}

// incompleteTail is the number of bytes at the end of bs that begin a
// multi-byte character without finishing it (0 when bs ends on a
// character boundary; invalid bytes count as complete: they decode to
// U+FFFD).
func incompleteTail(bs []byte) int {
	for i := len(bs) - 1; i >= 0 && i >= len(bs)-3; i-- {
		c := bs[i]
		if c < 0x80 {
			return 0
		}
		if utf8.RuneStart(c) {
			if utf8.FullRune(bs[i:]) {
				return 0
			}
			return len(bs) - i
		}
	}
	return 0
}
