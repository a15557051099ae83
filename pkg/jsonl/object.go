package jsonl

import (
	"bytes"
	"encoding/json"
	"fmt"
	"unicode/utf8"
)

// Member is one top-level "key": value pair of an object, as byte spans.
type Member struct {
	Key   string
	Value []byte // raw JSON value
}

// ErrNotObject is returned when a record is not a JSON object.
var ErrNotObject = fmt.Errorf("not a JSON object")

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// valueEnd returns the index just past the JSON value starting at b[i].
// b must be valid JSON.
func valueEnd(b []byte, i int) int {
	switch b[i] {
	case '"':
		return stringEnd(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				j = stringEnd(b, j) - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
		}
		return len(b)
	default:
		j := i
		for j < len(b) {
			switch b[j] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return j
			}
			j++
		}
		return j
	}
}

// stringEnd returns the index just past the string literal starting at b[i].
func stringEnd(b []byte, i int) int {
	for j := i + 1; j < len(b); {
		k := bytes.IndexByte(b[j:], '"')
		if k < 0 {
			return len(b)
		}
		q := j + k
		if !oddBackslashes(b[j:q]) {
			return q + 1
		}
		j = q + 1 // an escaped quote
	}
	return len(b)
}

// walk calls fn for each top-level member of the object raw (valid JSON).
// fn gets the raw key literal, the value span and the member's start/end.
func walk(raw []byte, fn func(key []byte, vs, ve int) bool) error {
	i := skipWS(raw, 0)
	if i >= len(raw) || raw[i] != '{' {
		return ErrNotObject
	}
	i = skipWS(raw, i+1)
	for i < len(raw) && raw[i] != '}' {
		ke := stringEnd(raw, i)
		key := raw[i:ke]
		i = skipWS(raw, ke)
		i = skipWS(raw, i+1) // ':'
		ve := valueEnd(raw, i)
		if !fn(key, i, ve) {
			return nil
		}
		i = skipWS(raw, ve)
		if i < len(raw) && raw[i] == ',' {
			i = skipWS(raw, i+1)
		}
	}
	return nil
}

func keyEquals(lit []byte, key string) bool {
	if bytes.IndexByte(lit, '\\') < 0 {
		return len(lit) == len(key)+2 && string(lit[1:len(lit)-1]) == key
	}
	var k string
	if json.Unmarshal(lit, &k) != nil {
		return false
	}
	return k == key
}

// Members lists the top-level members of an object in order.
func Members(raw []byte) ([]Member, error) {
	var out []Member
	err := walk(raw, func(key []byte, vs, ve int) bool {
		var k string
		if bytes.IndexByte(key, '\\') < 0 {
			k = string(key[1 : len(key)-1])
		} else {
			json.Unmarshal(key, &k)
		}
		out = append(out, Member{Key: k, Value: raw[vs:ve]})
		return true
	})
	return out, err
}

// Get returns the raw value of a top-level member. The last duplicate wins,
// as in encoding/json and Python's json module.
func Get(raw []byte, key string) (val []byte, found bool, err error) {
	err = walk(raw, func(k []byte, vs, ve int) bool {
		if keyEquals(k, key) {
			val, found = raw[vs:ve], true
		}
		return true
	})
	return val, found, err
}

// TypeName names the JSON type of a raw value, for error messages.
func TypeName(v []byte) string {
	if len(v) == 0 {
		return "missing"
	}
	switch v[0] {
	case '"':
		return "a string"
	case '{':
		return "an object"
	case '[':
		return "an array"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

// DecodeString decodes a raw JSON string literal, rejecting invalid UTF-8.
func DecodeString(v []byte) (string, error) {
	if len(v) < 2 || v[0] != '"' {
		return "", fmt.Errorf("is %s, want a string", TypeName(v))
	}
	body := v[1 : len(v)-1]
	simple := true
	for _, c := range body {
		if c == '\\' || c < 0x20 {
			simple = false
			break
		}
	}
	if !utf8.Valid(body) {
		return "", fmt.Errorf("contains invalid UTF-8")
	}
	if simple {
		return string(body), nil
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		return "", err
	}
	return s, nil
}

// GetString returns a top-level string member. found is false when the key
// is absent; err is set when the record is not an object or the member is not
// a string (the message names the field).
func GetString(raw []byte, key string) (s string, found bool, err error) {
	v, found, err := Get(raw, key)
	if err != nil || !found {
		return "", found, err
	}
	s, err = DecodeString(v)
	if err != nil {
		return "", true, fmt.Errorf("field %q %v", key, err)
	}
	return s, true, nil
}

// Set returns raw with member key set to the raw JSON value val: an existing
// member is replaced in place (its position kept), otherwise it is appended.
func Set(raw []byte, key string, val []byte) ([]byte, error) {
	vs, ve := -1, -1
	err := walk(raw, func(k []byte, s, e int) bool {
		if keyEquals(k, key) {
			vs, ve = s, e
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	if vs >= 0 {
		out := make([]byte, 0, len(raw)-(ve-vs)+len(val))
		out = append(out, raw[:vs]...)
		out = append(out, val...)
		return append(out, raw[ve:]...), nil
	}
	end := bytes.LastIndexByte(raw, '}')
	out := make([]byte, 0, len(raw)+len(key)+len(val)+8)
	out = append(out, raw[:end]...)
	if open := bytes.IndexByte(raw, '{'); len(bytes.TrimSpace(raw[open+1:end])) > 0 {
		out = append(out, ',') // the object already has members
	}
	out = AppendString(out, key)
	out = append(out, ':')
	out = append(out, val...)
	return append(out, raw[end:]...), nil
}

// SetString sets a string member.
func SetString(raw []byte, key, s string) ([]byte, error) {
	return Set(raw, key, AppendString(nil, s))
}

// Marshal encodes v as compact JSON without HTML escaping.
func Marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(b.Bytes(), "\n"), nil
}

const hexDigits = "0123456789abcdef"

// AppendString appends s as a JSON string literal (no HTML escaping;
// invalid UTF-8 becomes U+FFFD).
func AppendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	dst = AppendEscaped(dst, s)
	return append(dst, '"')
}

// AppendEscaped appends s escaped as the body of a JSON string literal
// (without the quotes): no HTML escaping, U+2028/U+2029 escaped, invalid
// UTF-8 replaced by U+FFFD.
func AppendEscaped(dst []byte, s string) []byte {
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, "\ufffd"...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	return append(dst, s[start:]...)
}

// GetText is GetString for text that must be valid Unicode: an unpaired
// surrogate escape such as "\ud800" (which Go's decoder silently turns
// into U+FFFD, and Python refuses to encode) is an error naming the field,
// as promptfmt reports it.
func GetText(raw []byte, key string) (s string, found bool, err error) {
	v, found, err := Get(raw, key)
	if err != nil || !found {
		return "", found, err
	}
	if len(v) >= 2 && v[0] == '"' {
		if r, bad := UnpairedSurrogate(v[1 : len(v)-1]); bad {
			return "", true, fmt.Errorf("field %q: invalid Unicode: unpaired surrogate escape \\u%04x", key, r)
		}
	}
	s, err = DecodeString(v)
	if err != nil {
		return "", true, fmt.Errorf("field %q %v", key, err)
	}
	return s, true, nil
}

// Hex4 is the value of the 4 hex digits at the start of b (a \uXXXX
// escape's digits), or -1 when b does not start with 4 hex digits.
func Hex4(b []byte) rune {
	if len(b) < 4 {
		return -1
	}
	var r rune
	for _, c := range b[:4] {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			r |= rune(c - 'A' + 10)
		default:
			return -1
		}
	}
	return r
}

// UnpairedSurrogate finds the first \uD800-\uDFFF escape in the body of a
// JSON string literal that is not half of a high-low pair.
func UnpairedSurrogate(body []byte) (rune, bool) {
	for i := 0; i < len(body); i++ {
		k := bytes.IndexByte(body[i:], '\\')
		if k < 0 {
			break
		}
		i += k + 1
		if i >= len(body) || body[i] != 'u' {
			continue // a two-byte escape; its second byte is skipped here
		}
		r := Hex4(body[i+1:])
		i += 4
		switch {
		case r >= 0xD800 && r < 0xDC00:
			if i+6 < len(body) && body[i+1] == '\\' && body[i+2] == 'u' {
				if lo := Hex4(body[i+3:]); lo >= 0xDC00 && lo < 0xE000 {
					i += 6
					continue
				}
			}
			return r, true
		case r >= 0xDC00 && r < 0xE000:
			return r, true
		}
	}
	return 0, false
}
