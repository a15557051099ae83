package sentencepiece

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Decode turns ids back into text as spm_decode --input_format=id does:
// control pieces vanish, the unknown piece becomes the unknown surface
// (" ⁇ " by default), runs of byte pieces are joined and read as UTF-8
// (each invalid byte becomes U+FFFD), ▁ becomes a space, and the first
// visible piece loses the ▁ that the dummy prefix added.
func (m *Model) Decode(ids []int32) (string, error) {
	b, err := m.AppendDecode(nil, ids)
	return string(b), err
}

// ErrDenormalizer is returned when decoding with a model whose
// denormalization rules are not supported.
var ErrDenormalizer = errors.New("decoding with denormalization rules is not supported")

// AppendDecode appends the decoded text of ids to dst.
func (m *Model) AppendDecode(dst []byte, ids []int32) ([]byte, error) {
	if m.denormRules {
		return dst, ErrDenormalizer
	}
	stripFirst := m.Normalizer.AddDummyPrefix || m.Normalizer.RemoveExtraWhitespaces
	isBosWS := true
	var bytes []byte
	flush := func() {
		for len(bytes) > 0 {
			r, l := utf8.DecodeRune(bytes)
			if r == utf8.RuneError && l <= 1 {
				dst = append(dst, replacementChar...)
				l = 1
			} else {
				dst = append(dst, bytes[:l]...)
			}
			bytes = bytes[l:]
		}
	}
	for _, id := range ids {
		if id < 0 || int(id) >= len(m.Pieces) {
			return dst, fmt.Errorf("id %d is outside the vocabulary of %d pieces", id, len(m.Pieces))
		}
		p := &m.Pieces[id]
		if p.Type == Byte {
			c, _ := pieceToByte(p.Piece)
			bytes = append(bytes, c)
			isBosWS = false
			continue
		}
		flush()
		switch p.Type {
		case Control:
			continue
		case Unknown:
			dst = append(dst, m.Trainer.UnkSurface...)
			isBosWS = false
			continue
		}
		piece := p.Piece
		if isBosWS && stripFirst {
			piece = strings.TrimPrefix(piece, SpaceSymbol)
		}
		isBosWS = false
		if m.Normalizer.EscapeWhitespaces || strings.Contains(piece, SpaceSymbol) {
			dst = appendUnescaped(dst, piece)
		} else {
			dst = append(dst, piece...)
		}
	}
	flush()
	return dst, nil
}

func appendUnescaped(dst []byte, p string) []byte {
	for {
		i := strings.Index(p, SpaceSymbol)
		if i < 0 {
			return append(dst, p...)
		}
		dst = append(dst, p[:i]...)
		dst = append(dst, ' ')
		p = p[i+len(SpaceSymbol):]
	}
}
