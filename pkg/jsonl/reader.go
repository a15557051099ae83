// Package jsonl reads and writes streams of JSON records: JSON Lines, or a
// single top-level JSON array (such as alpaca_data.json), optionally zstd
// compressed. Records are kept as their raw bytes so that unknown fields and
// key order pass through untouched; the helpers in object.go read and set
// single members without decoding the rest.
package jsonl

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/alpaca-go/alpaca/pkg/xio"
)

// Record is one JSON value of the stream.
type Record struct {
	Raw  []byte // the value; for JSONL the line without its newline, for arrays the compacted element
	Num  int    // 1-based record number
	Line int    // 1-based line where the record starts
}

// Error is a problem at a known place of an input.
type Error struct {
	File   string
	Line   int
	Record int
	Msg    string
}

func (e *Error) Error() string {
	switch {
	case e.Line > 0 && e.Record > 0:
		return fmt.Sprintf("%s:%d: record %d: %s", e.File, e.Line, e.Record, e.Msg)
	case e.Line > 0:
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	case e.Record > 0:
		return fmt.Sprintf("%s: record %d: %s", e.File, e.Record, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

// Errorf builds an Error for record rec of file name.
func Errorf(name string, rec Record, format string, args ...any) error {
	return &Error{File: name, Line: rec.Line, Record: rec.Num, Msg: fmt.Sprintf(format, args...)}
}

// Reader yields the records of one input.
type Reader struct {
	in      *xio.Input
	br      *bufio.Reader
	name    string
	started bool
	array   bool
	arrDone bool
	line    int // current line (1-based) of the next unread byte
	num     int
	buf     []byte
}

// Open opens path ("" or "-" = stdin) for reading.
func Open(path string) (*Reader, error) {
	in, err := xio.Open(path)
	if err != nil {
		return nil, err
	}
	return &Reader{in: in, br: in.Reader, name: in.Name, line: 1}, nil
}

// NewReader reads records from r; name is used in error messages.
func NewReader(r io.Reader, name string) (*Reader, error) {
	in, err := xio.NewInput(r, name, nil)
	if err != nil {
		return nil, err
	}
	return &Reader{in: in, br: in.Reader, name: name, line: 1}, nil
}

// Name is the input's display name.
func (r *Reader) Name() string { return r.name }

// Close closes the underlying input.
func (r *Reader) Close() error { return r.in.Close() }

func (r *Reader) errf(line, rec int, format string, args ...any) error {
	return &Error{File: r.name, Line: line, Record: rec, Msg: fmt.Sprintf(format, args...)}
}

// skipSpace consumes whitespace (and a UTF-8 BOM at the very start).
func (r *Reader) skipSpace() (byte, error) {
	for {
		c, err := r.br.ReadByte()
		if err != nil {
			return 0, err
		}
		switch c {
		case '\n':
			r.line++
		case ' ', '\t', '\r':
		case 0xEF:
			if !r.started {
				if b, _ := r.br.Peek(2); bytes.Equal(b, []byte{0xBB, 0xBF}) {
					r.br.Discard(2)
					continue
				}
			}
			return c, nil
		default:
			return c, nil
		}
	}
}

// Next returns the next record, or io.EOF at the end of the input.
func (r *Reader) Next() (Record, error) {
	if !r.started {
		c, err := r.skipSpace()
		r.started = true
		if err == io.EOF {
			return Record{}, io.EOF
		}
		if err != nil {
			return Record{}, r.ioErr(err)
		}
		if c == '[' {
			r.array = true
		} else {
			r.br.UnreadByte()
		}
	}
	if r.array {
		return r.nextElement()
	}
	return r.nextLine()
}

func (r *Reader) ioErr(err error) error {
	return &Error{File: r.name, Line: r.line, Msg: "read error: " + err.Error()}
}

func (r *Reader) nextLine() (Record, error) {
	for {
		line, err := r.readLine()
		if je, ok := err.(*Error); ok {
			return Record{}, je
		}
		if err != nil && err != io.EOF {
			return Record{}, r.ioErr(err)
		}
		if len(line) == 0 && err == io.EOF {
			return Record{}, io.EOF
		}
		lineNo := r.line
		r.line++
		t := bytes.TrimSpace(line)
		if len(t) == 0 {
			if err == io.EOF {
				return Record{}, io.EOF
			}
			continue
		}
		r.num++
		if !valid(t) {
			return Record{}, r.errf(lineNo, r.num, "invalid JSON: %s", describeInvalid(t))
		}
		raw := make([]byte, len(t))
		copy(raw, t)
		return Record{Raw: raw, Num: r.num, Line: lineNo}, nil
	}
}

// MaxRecordBytes bounds one record (a line, or an element of a JSON
// array): real records are kilobytes, and a line without end (a few KB of
// zstd can hold gigabytes of it) must not grow memory without bound.
const MaxRecordBytes = 256 << 20

// readLine reads one line of up to MaxRecordBytes, without its newline.
func (r *Reader) readLine() ([]byte, error) {
	r.buf = r.buf[:0]
	for {
		chunk, err := r.br.ReadSlice('\n')
		r.buf = append(r.buf, chunk...)
		if err == bufio.ErrBufferFull {
			if len(r.buf) > MaxRecordBytes {
				return nil, r.errf(r.line, r.num+1, "record longer than %d MiB (no newline); not JSONL?", MaxRecordBytes>>20)
			}
			continue
		}
		if err == nil {
			return r.buf[:len(r.buf)-1], nil
		}
		return r.buf, err
	}
}

func (r *Reader) nextElement() (Record, error) {
	if r.arrDone {
		return Record{}, io.EOF
	}
	c, err := r.skipSpace()
	if err != nil {
		if err == io.EOF {
			return Record{}, r.errf(r.line, 0, "unexpected end of input: JSON array not closed")
		}
		return Record{}, r.ioErr(err)
	}
	if r.num > 0 {
		if c == ']' {
			return r.finishArray()
		}
		if c != ',' {
			return Record{}, r.errf(r.line, r.num+1, "invalid JSON array: expected ',' or ']' after record %d, found %q", r.num, c)
		}
		c, err = r.skipSpace()
		if err != nil {
			return Record{}, r.errf(r.line, r.num+1, "unexpected end of input inside JSON array")
		}
	} else if c == ']' {
		return r.finishArray()
	}
	r.num++
	start := r.line
	val, err := r.scanValue(c)
	if err != nil {
		if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) {
			return Record{}, r.errf(start, r.num, "unexpected end of input inside record")
		}
		return Record{}, r.ioErr(err)
	}
	if !valid(val) {
		return Record{}, r.errf(start, r.num, "invalid JSON: %s", describeInvalid(val))
	}
	return Record{Raw: compactValid(make([]byte, 0, len(val)), val), Num: r.num, Line: start}, nil
}

// compactValid appends src without insignificant white space: the same
// bytes as json.Compact for valid JSON, in one cheap pass.
func compactValid(dst, src []byte) []byte {
	start := 0
	for i := 0; i < len(src); i++ {
		switch src[i] {
		case '"':
			// skip the string: find its closing quote
			for {
				j := bytes.IndexByte(src[i+1:], '"')
				if j < 0 {
					return append(dst, src[start:]...)
				}
				seg := src[i+1 : i+1+j]
				i += 1 + j
				if !oddBackslashes(seg) {
					break
				}
			}
		case ' ', '\t', '\r', '\n':
			dst = append(dst, src[start:i]...)
			start = i + 1
		}
	}
	return append(dst, src[start:]...)
}

func (r *Reader) finishArray() (Record, error) {
	r.arrDone = true
	c, err := r.skipSpace()
	if err == io.EOF {
		return Record{}, io.EOF
	}
	if err != nil {
		return Record{}, r.ioErr(err)
	}
	return Record{}, r.errf(r.line, 0, "unexpected data %q after the closing ']' of the JSON array", c)
}

// scanValue reads one JSON value whose first byte is c, tracking nesting and
// strings; the result is validated by the caller.
func (r *Reader) scanValue(c byte) ([]byte, error) {
	r.buf = append(r.buf[:0], c)
	if c != '{' && c != '[' && c != '"' {
		// a scalar: read up to a delimiter
		for {
			b, err := r.br.ReadByte()
			if err != nil {
				return r.buf, nil
			}
			switch b {
			case ',', ']', ' ', '\t', '\r', '\n':
				r.br.UnreadByte()
				return r.buf, nil
			}
			r.buf = append(r.buf, b)
		}
	}
	depth := 0
	inStr := c == '"'
	if !inStr {
		depth = 1
	}
	esc := false
	for {
		// work on the buffered bytes directly rather than byte by byte
		if r.br.Buffered() == 0 {
			if _, err := r.br.Peek(1); err != nil {
				return nil, io.ErrUnexpectedEOF
			}
		}
		chunk, _ := r.br.Peek(r.br.Buffered())
		for i := 0; i < len(chunk); i++ {
			if inStr {
				// jump to the next quote (most bytes are inside strings)
				if esc {
					esc = false
					if chunk[i] == '\n' {
						r.line++
					}
					continue
				}
				j := bytes.IndexByte(chunk[i:], '"')
				if j < 0 {
					r.line += bytes.Count(chunk[i:], nl)
					esc = oddBackslashes(chunk[i:])
					break
				}
				q := i + j
				r.line += bytes.Count(chunk[i:q], nl)
				odd := oddBackslashes(chunk[i:q])
				i = q
				if odd {
					continue // an escaped quote
				}
				inStr = false
				if depth == 0 {
					return r.take(chunk, i), nil
				}
				continue
			}
			switch chunk[i] {
			case '\n':
				r.line++
			case '"':
				inStr = true
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return r.take(chunk, i), nil
				}
			}
		}
		r.buf = append(r.buf, chunk...)
		r.br.Discard(len(chunk))
		if len(r.buf) > MaxRecordBytes {
			return nil, r.errf(r.line, r.num+1, "array element longer than %d MiB", MaxRecordBytes>>20)
		}
	}
}

var nl = []byte{'\n'}

// oddBackslashes reports whether b ends with an odd run of backslashes.
// Callers pass a string segment that starts where no escape is pending.
func oddBackslashes(b []byte) bool {
	n := 0
	for k := len(b) - 1; k >= 0 && b[k] == '\\'; k-- {
		n++
	}
	return n%2 == 1
}

// take ends a scanned value at chunk[i] (inclusive).
func (r *Reader) take(chunk []byte, i int) []byte {
	r.buf = append(r.buf, chunk[:i+1]...)
	r.br.Discard(i + 1)
	return r.buf
}

// describeInvalid returns the decoder's message for bad JSON.
func describeInvalid(b []byte) string {
	var v any
	err := json.Unmarshal(b, &v)
	if err == nil {
		return "malformed value"
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("%s (at byte %d)", se.Error(), se.Offset)
	}
	return err.Error()
}
