package prompt

import (
	"fmt"
	"github.com/alpaca-go/alpaca/pkg/jsonl"
	"strings"
	"unicode"
	"unicode/utf8"
)

// PyStrip removes leading and trailing whitespace exactly as Python's
// str.strip() does: Unicode white space (Go's unicode.IsSpace) plus the
// information separators U+001C..U+001F, which Python also counts.
func PyStrip(s string) string {
	return strings.TrimFunc(s, isPySpace)
}

func isPySpace(r rune) bool {
	return unicode.IsSpace(r) || (r >= 0x1c && r <= 0x1f)
}

// AppendEscaped appends s escaped as the body of a JSON string literal
// (see jsonl.AppendEscaped).
func AppendEscaped(dst []byte, s string) []byte { return jsonl.AppendEscaped(dst, s) }

// CheckBody reports whether the body of a JSON string literal (between the
// quotes, from valid JSON) holds valid Unicode text: valid UTF-8 bytes and
// no unpaired surrogate escape such as \ud800, which Go would silently turn
// into U+FFFD and Python would refuse to encode.
func CheckBody(body []byte) error {
	if !utf8.Valid(body) {
		for i := 0; i < len(body); {
			r, n := utf8.DecodeRune(body[i:])
			if r == utf8.RuneError && n == 1 {
				return fmt.Errorf("invalid UTF-8 (byte 0x%02x at offset %d)", body[i], i)
			}
			i += n
		}
	}
	if r, bad := jsonl.UnpairedSurrogate(body); bad {
		return fmt.Errorf("invalid Unicode: unpaired surrogate escape \\u%04x", r)
	}
	return nil
}

// AppendUnescaped appends the text of a JSON string literal's body (from
// valid JSON, checked with CheckBody) to dst: the decoding of encoding/json,
// without its reflection overhead.
func AppendUnescaped(dst []byte, body []byte) []byte {
	for {
		i := indexBackslash(body)
		if i < 0 {
			return append(dst, body...)
		}
		dst = append(dst, body[:i]...)
		if i+1 >= len(body) {
			return dst
		}
		c := body[i+1]
		body = body[i+2:]
		switch c {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r := jsonl.Hex4(body)
			if r < 0 {
				return append(dst, "\ufffd"...)
			}
			body = body[4:]
			if r >= 0xD800 && r < 0xDC00 && len(body) >= 6 && body[0] == '\\' && body[1] == 'u' {
				if lo := jsonl.Hex4(body[2:]); lo >= 0xDC00 && lo < 0xE000 {
					r = 0x10000 + (r-0xD800)<<10 + (lo - 0xDC00)
					body = body[6:]
				}
			}
			if r >= 0xD800 && r < 0xE000 {
				r = utf8.RuneError
			}
			dst = utf8.AppendRune(dst, r)
		default: // '"', '\\', '/'
			dst = append(dst, c)
		}
	}
}

func indexBackslash(b []byte) int {
	for i, c := range b {
		if c == '\\' {
			return i
		}
	}
	return -1
}
