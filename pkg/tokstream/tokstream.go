// Package tokstream reads and writes the binary token stream that `tokenize`
// produces and `trainer` consumes: a header (magic, version, vocabulary,
// id width, special ids, tokenizer fingerprint, JSON metadata) followed by
// one record per example (token ids and a loss mask) and an end marker.
// The layout is documented in docs/formats.md.
package tokstream

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
)

// Magic starts every token stream.
var Magic = [8]byte{'A', 'L', 'P', 'T', 'O', 'K', 'S', 0}

// Version is the format version this package writes and reads.
const Version = 1

const endMarker = 0xFFFFFFFF

// MaxTokens bounds one record (a sanity limit against corrupt input).
const MaxTokens = 1 << 28

// Header describes a stream.
type Header struct {
	Version     int
	VocabSize   int
	IDWidth     int   // 2 (uint16) or 4 (uint32); 0 = choose from VocabSize
	BOS         int32 // -1 when none
	EOS         int32 // -1 when none
	Pad         int32 // -1 when none
	Fingerprint [32]byte
	Meta        map[string]any // free-form (tokenizer name, max_len, ...)
}

// FingerprintHex is the fingerprint in hex.
func (h *Header) FingerprintHex() string { return hex.EncodeToString(h.Fingerprint[:]) }

// Example is one training example.
type Example struct {
	IDs  []int32
	Mask []bool // Mask[i] is true when token i is a prediction target (counts in the loss)
}

// Targets counts the positions that count in the loss.
func (e *Example) Targets() int {
	n := 0
	for _, m := range e.Mask {
		if m {
			n++
		}
	}
	return n
}

// Writer writes a stream.
type Writer struct {
	w       *bufio.Writer
	h       Header
	records uint64
	tokens  uint64
	buf     []byte
	closed  bool
}

// NewWriter writes the header of h to w.
func NewWriter(w io.Writer, h Header) (*Writer, error) {
	if h.VocabSize <= 0 {
		return nil, errors.New("tokstream: vocab size must be positive")
	}
	if h.IDWidth == 0 {
		h.IDWidth = 4
		if h.VocabSize <= 1<<16 {
			h.IDWidth = 2
		}
	}
	if h.IDWidth != 2 && h.IDWidth != 4 {
		return nil, fmt.Errorf("tokstream: id width %d (want 2 or 4)", h.IDWidth)
	}
	if h.IDWidth == 2 && h.VocabSize > 1<<16 {
		return nil, fmt.Errorf("tokstream: vocab %d does not fit uint16 ids", h.VocabSize)
	}
	if err := h.checkIDs(); err != nil {
		return nil, fmt.Errorf("tokstream: %v", err)
	}
	h.Version = Version
	meta := []byte("{}")
	if h.Meta != nil {
		var err error
		if meta, err = json.Marshal(h.Meta); err != nil {
			return nil, err
		}
	}
	bw := bufio.NewWriterSize(w, 1<<20)
	hdr := make([]byte, 0, 64+len(meta))
	hdr = append(hdr, Magic[:]...)
	hdr = binary.LittleEndian.AppendUint16(hdr, Version)
	hdr = append(hdr, byte(h.IDWidth), 0)
	hdr = binary.LittleEndian.AppendUint32(hdr, uint32(h.VocabSize))
	hdr = binary.LittleEndian.AppendUint32(hdr, uint32(h.BOS))
	hdr = binary.LittleEndian.AppendUint32(hdr, uint32(h.EOS))
	hdr = binary.LittleEndian.AppendUint32(hdr, uint32(h.Pad))
	hdr = append(hdr, h.Fingerprint[:]...)
	hdr = binary.LittleEndian.AppendUint32(hdr, uint32(len(meta)))
	hdr = append(hdr, meta...)
	if _, err := bw.Write(hdr); err != nil {
		return nil, err
	}
	return &Writer{w: bw, h: h}, nil
}

// Header returns the header as written (IDWidth resolved).
func (w *Writer) Header() Header { return w.h }

// Write appends one example.
func (w *Writer) Write(ex Example) error {
	n := len(ex.IDs)
	if len(ex.Mask) != n {
		return fmt.Errorf("tokstream: %d ids but %d mask entries", n, len(ex.Mask))
	}
	if n >= MaxTokens {
		return fmt.Errorf("tokstream: example of %d tokens is too long", n)
	}
	b := w.buf[:0]
	b = binary.LittleEndian.AppendUint32(b, uint32(n))
	for _, id := range ex.IDs {
		if id < 0 || int(id) >= w.h.VocabSize {
			return fmt.Errorf("tokstream: id %d outside vocab of %d", id, w.h.VocabSize)
		}
		if w.h.IDWidth == 2 {
			b = binary.LittleEndian.AppendUint16(b, uint16(id))
		} else {
			b = binary.LittleEndian.AppendUint32(b, uint32(id))
		}
	}
	mask := make([]byte, (n+7)/8)
	for i, m := range ex.Mask {
		if m {
			mask[i/8] |= 1 << (i % 8)
		}
	}
	b = append(b, mask...)
	w.buf = b
	w.records++
	w.tokens += uint64(n)
	_, err := w.w.Write(b)
	return err
}

// Close writes the end marker (record and token counts) and flushes. It
// does not close the underlying writer.
func (w *Writer) Close() error {
	if w.closed {
		return nil
	}
	w.closed = true
	var b []byte
	b = binary.LittleEndian.AppendUint32(b, endMarker)
	b = binary.LittleEndian.AppendUint64(b, w.records)
	b = binary.LittleEndian.AppendUint64(b, w.tokens)
	if _, err := w.w.Write(b); err != nil {
		return err
	}
	return w.w.Flush()
}

// Reader reads a stream.
type Reader struct {
	r       *bufio.Reader
	h       Header
	name    string
	records uint64
	tokens  uint64
	done    bool
	buf     []byte
}

// FormatError reports a stream that is not valid.
type FormatError struct {
	Name   string
	Record uint64 // 1-based; 0 for the header
	Msg    string
}

func (e *FormatError) Error() string {
	if e.Record > 0 {
		return fmt.Sprintf("%s: token stream record %d: %s", e.Name, e.Record, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.Name, e.Msg)
}

// NewReader reads and checks the header; name is used in errors.
func NewReader(r io.Reader, name string) (*Reader, error) {
	br, ok := r.(*bufio.Reader)
	if !ok {
		br = bufio.NewReaderSize(r, 1<<20)
	}
	rd := &Reader{r: br, name: name}
	fixed := make([]byte, 8+2+2+4*4+32+4)
	if _, err := io.ReadFull(br, fixed[:8]); err != nil {
		return nil, rd.errf(0, "not a token stream: too short (%v)", err)
	}
	if [8]byte(fixed[:8]) != Magic {
		return nil, rd.errf(0, "not a token stream (magic %q, want %q); was it written by `tokenize`?", fixed[:8], Magic[:7])
	}
	if _, err := io.ReadFull(br, fixed[8:]); err != nil {
		return nil, rd.errf(0, "truncated token stream header")
	}
	le := binary.LittleEndian
	h := &rd.h
	h.Version = int(le.Uint16(fixed[8:]))
	if h.Version != Version {
		return nil, rd.errf(0, "token stream version %d is not supported (this build reads version %d)", h.Version, Version)
	}
	h.IDWidth = int(fixed[10])
	if h.IDWidth != 2 && h.IDWidth != 4 {
		return nil, rd.errf(0, "bad id width %d in token stream header", h.IDWidth)
	}
	h.VocabSize = int(le.Uint32(fixed[12:]))
	h.BOS = int32(le.Uint32(fixed[16:]))
	h.EOS = int32(le.Uint32(fixed[20:]))
	h.Pad = int32(le.Uint32(fixed[24:]))
	if err := h.checkIDs(); err != nil {
		return nil, rd.errf(0, "bad token stream header: %v", err)
	}
	copy(h.Fingerprint[:], fixed[28:60])
	ml := le.Uint32(fixed[60:])
	if ml > 1<<20 {
		return nil, rd.errf(0, "token stream metadata of %d bytes is implausible", ml)
	}
	meta := make([]byte, ml)
	if _, err := io.ReadFull(br, meta); err != nil {
		return nil, rd.errf(0, "truncated token stream header")
	}
	if err := json.Unmarshal(meta, &h.Meta); err != nil {
		return nil, rd.errf(0, "bad token stream metadata: %v", err)
	}
	return rd, nil
}

// checkIDs checks the vocabulary size against the id width and the
// special ids against the vocabulary: each is -1 (none) or a token id.
func (h *Header) checkIDs() error {
	if h.VocabSize <= 0 || h.VocabSize > math.MaxInt32 {
		return fmt.Errorf("vocab size %d", uint32(h.VocabSize))
	}
	if h.IDWidth == 2 && h.VocabSize > 1<<16 {
		return fmt.Errorf("vocab %d does not fit its uint16 ids", h.VocabSize)
	}
	for _, s := range []struct {
		name string
		id   int32
	}{{"BOS", h.BOS}, {"EOS", h.EOS}, {"PAD", h.Pad}} {
		if s.id < -1 || int(s.id) >= h.VocabSize {
			return fmt.Errorf("%s id %d is neither -1 (none) nor inside the vocabulary of %d", s.name, s.id, h.VocabSize)
		}
	}
	return nil
}

func (r *Reader) errf(rec uint64, format string, args ...any) error {
	return &FormatError{Name: r.name, Record: rec, Msg: fmt.Sprintf(format, args...)}
}

// Header returns the stream's header.
func (r *Reader) Header() Header { return r.h }

// Records is the number of records read so far.
func (r *Reader) Records() uint64 { return r.records }

// Next returns the next example, or io.EOF after the end marker. A stream
// that stops without its end marker is reported as truncated.
func (r *Reader) Next() (Example, error) {
	if r.done {
		return Example{}, io.EOF
	}
	rec := r.records + 1
	var nb [4]byte
	if _, err := io.ReadFull(r.r, nb[:]); err != nil {
		return Example{}, r.errf(rec, "truncated token stream: it ends after %d records without its end marker", r.records)
	}
	n := binary.LittleEndian.Uint32(nb[:])
	if n == endMarker {
		var tail [16]byte
		if _, err := io.ReadFull(r.r, tail[:]); err != nil {
			return Example{}, r.errf(rec, "truncated end marker")
		}
		wantRec, wantTok := binary.LittleEndian.Uint64(tail[:]), binary.LittleEndian.Uint64(tail[8:])
		if wantRec != r.records || wantTok != r.tokens {
			return Example{}, r.errf(0, "end marker says %d records / %d tokens, read %d / %d", wantRec, wantTok, r.records, r.tokens)
		}
		r.done = true
		if _, err := r.r.ReadByte(); err != io.EOF {
			return Example{}, r.errf(0, "data after the end marker")
		}
		return Example{}, io.EOF
	}
	if n >= MaxTokens {
		return Example{}, r.errf(rec, "implausible length %d (corrupt stream?)", n)
	}
	w := r.h.IDWidth
	size := int(n)*w + (int(n)+7)/8
	// The buffer grows with the data that actually arrives (doubling
	// from 1 MiB), so a corrupt length in a small file cannot allocate
	// gigabytes before the stream turns out to be short.
	b := r.buf[:0]
	for len(b) < size {
		k := min(size-len(b), max(len(b), 1<<20))
		if cap(b)-len(b) < k {
			nb := make([]byte, len(b), len(b)+k)
			copy(nb, b)
			b = nb
		}
		if _, err := io.ReadFull(r.r, b[len(b):len(b)+k]); err != nil {
			return Example{}, r.errf(rec, "truncated token stream: record cut short")
		}
		b = b[:len(b)+k]
	}
	r.buf = b
	ex := Example{IDs: make([]int32, n), Mask: make([]bool, n)}
	for i := range ex.IDs {
		var id uint32
		if w == 2 {
			id = uint32(binary.LittleEndian.Uint16(b[2*i:]))
		} else {
			id = binary.LittleEndian.Uint32(b[4*i:])
		}
		if id >= uint32(r.h.VocabSize) {
			return Example{}, r.errf(rec, "token id %d outside the vocabulary of %d", id, r.h.VocabSize)
		}
		ex.IDs[i] = int32(id)
	}
	mask := b[int(n)*w:]
	for i := range ex.Mask {
		ex.Mask[i] = mask[i/8]&(1<<(i%8)) != 0
	}
	if n%8 != 0 && mask[len(mask)-1]>>(n%8) != 0 {
		return Example{}, r.errf(rec, "stray bits after the mask (corrupt stream?)")
	}
	r.records++
	r.tokens += uint64(n)
	return ex, nil
}
