// Package sentencepiece loads SentencePiece BPE models (the `.model` files
// of spm_train, e.g. the LLaMA tokenizer), encodes and decodes text exactly
// as spm_encode / spm_decode do, and trains new BPE models that spm_encode
// loads.
//
// The `.model` file is the ModelProto protobuf of sentencepiece_model.proto;
// it is decoded here field by field with protowire (no generated code).
//
// Supported: model_type BPE; normalizers "identity" and every precompiled
// character map (nmt_nfkc, nfkc, nmt_nfkc_cf, nfkc_cf, custom rules) with
// add_dummy_prefix, remove_extra_whitespaces and escape_whitespaces as the
// model says; byte fallback; unknown, control, user-defined and unused
// pieces. Refused with an error: other model types (unigram, word, char),
// treat_whitespace_as_suffix, and decoding with denormalization rules.
package sentencepiece

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"math"
	"strings"
	"unicode/utf8"

	"github.com/alpaca-go/alpaca/pkg/xio"
	"google.golang.org/protobuf/encoding/protowire"
)

// PieceType is the type of a vocabulary entry (SentencePiece.Type).
type PieceType int32

// Piece types, numbered as in sentencepiece_model.proto.
const (
	Normal      PieceType = 1
	Unknown     PieceType = 2
	Control     PieceType = 3
	UserDefined PieceType = 4
	Unused      PieceType = 5
	Byte        PieceType = 6
)

func (t PieceType) String() string {
	switch t {
	case Normal:
		return "normal"
	case Unknown:
		return "unknown"
	case Control:
		return "control"
	case UserDefined:
		return "user-defined"
	case Unused:
		return "unused"
	case Byte:
		return "byte"
	}
	return fmt.Sprintf("type(%d)", int32(t))
}

// ModelType is TrainerSpec.ModelType.
type ModelType int32

// Model types, numbered as in sentencepiece_model.proto.
const (
	Unigram ModelType = 1
	BPE     ModelType = 2
	Word    ModelType = 3
	Char    ModelType = 4
)

func (t ModelType) String() string {
	switch t {
	case Unigram:
		return "unigram"
	case BPE:
		return "bpe"
	case Word:
		return "word"
	case Char:
		return "char"
	}
	return fmt.Sprintf("model_type(%d)", int32(t))
}

// Piece is one vocabulary entry.
type Piece struct {
	Piece string
	Score float32
	Type  PieceType
}

// NormalizerSpec holds the normalization settings of a model.
type NormalizerSpec struct {
	Name                   string
	PrecompiledCharsmap    []byte
	AddDummyPrefix         bool // default true
	RemoveExtraWhitespaces bool // default true
	EscapeWhitespaces      bool // default true
	NormalizationRuleTSV   string
}

// TrainerSpec holds the trainer settings that matter when using a model,
// plus the ones our trainer writes.
type TrainerSpec struct {
	ModelType               ModelType
	VocabSize               int32
	ByteFallback            bool
	TreatWhitespaceAsSuffix bool
	UnkID, BosID, EosID     int32
	PadID                   int32
	UnkPiece, BosPiece      string
	EosPiece, PadPiece      string
	UnkSurface              string
	SplitDigits             bool
	CharacterCoverage       float32
	MaxSentencePieceLength  int32
}

// SpaceSymbol is U+2581, the escaped whitespace.
const SpaceSymbol = "\u2581"

// Model is a loaded SentencePiece BPE model. It is safe for concurrent use.
type Model struct {
	Pieces     []Piece
	Trainer    TrainerSpec
	Normalizer NormalizerSpec
	// Fingerprint is the SHA-256 of the .model file bytes.
	Fingerprint [32]byte

	pieceIDs    map[string]int32 // normal, user-defined, unused (the BPE vocabulary)
	reserved    map[string]int32 // unknown, control, byte
	unk         int32
	byteIDs     [256]int32 // byte fallback piece per byte value, -1 when absent
	hasUnused   bool
	userDefined []string

	norm        *normalizer
	splitAtWS   bool // merges never cross "x▁" (x not ▁): encode word by word
	denormRules bool // denormalizer_spec has rules (decode refuses)
	maxPieceLen int  // longest piece in bytes
}

// MaxModelBytes bounds a .model file (LLaMA's is 500 KB; 256k-piece
// models a few MB).
const MaxModelBytes = 1 << 30

// Load reads and parses a .model file.
func Load(path string) (*Model, error) {
	// A regular file of sane size: a FIFO named as the model would block.
	b, err := xio.ReadRegular(path, MaxModelBytes)
	if err != nil {
		return nil, err
	}
	m, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

// Parse decodes a serialized ModelProto.
func Parse(b []byte) (*Model, error) {
	m := &Model{Fingerprint: sha256.Sum256(b)}
	m.Trainer = TrainerSpec{ModelType: Unigram, UnkID: 0, BosID: 1, EosID: 2, PadID: -1,
		UnkPiece: "<unk>", BosPiece: "<s>", EosPiece: "</s>", PadPiece: "<pad>",
		UnkSurface: " \u2047 ", CharacterCoverage: 0.9995, MaxSentencePieceLength: 16}
	m.Normalizer = defaultNormalizer()
	var denorm *NormalizerSpec
	sawTrainer := false
	err := eachField(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		switch num {
		case 1:
			if typ != protowire.BytesType {
				return errors.New("pieces: wrong wire type")
			}
			p, err := parsePiece(v)
			if err != nil {
				return fmt.Errorf("piece %d: %w", len(m.Pieces), err)
			}
			m.Pieces = append(m.Pieces, p)
		case 2:
			if typ != protowire.BytesType {
				return errors.New("trainer_spec: wrong wire type")
			}
			sawTrainer = true
			if err := parseTrainer(v, &m.Trainer); err != nil {
				return fmt.Errorf("trainer_spec: %w", err)
			}
		case 3:
			if typ != protowire.BytesType {
				return errors.New("normalizer_spec: wrong wire type")
			}
			if err := parseNormalizer(v, &m.Normalizer); err != nil {
				return fmt.Errorf("normalizer_spec: %w", err)
			}
		case 5:
			if typ != protowire.BytesType {
				return errors.New("denormalizer_spec: wrong wire type")
			}
			d := defaultNormalizer()
			if err := parseNormalizer(v, &d); err != nil {
				return fmt.Errorf("denormalizer_spec: %w", err)
			}
			denorm = &d
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("not a SentencePiece model: %w", err)
	}
	if len(m.Pieces) == 0 {
		return nil, errors.New("not a SentencePiece model: no pieces")
	}
	if !sawTrainer {
		return nil, errors.New("not a SentencePiece model: no trainer_spec")
	}
	if m.Trainer.ModelType != BPE {
		return nil, fmt.Errorf("model type %s is not supported (only bpe models, such as the LLaMA tokenizer)", m.Trainer.ModelType)
	}
	if m.Trainer.TreatWhitespaceAsSuffix {
		return nil, errors.New("treat_whitespace_as_suffix models are not supported")
	}
	if denorm != nil && len(denorm.PrecompiledCharsmap) > 0 {
		m.denormRules = true
	}
	if err := m.init(); err != nil {
		return nil, err
	}
	return m, nil
}

func defaultNormalizer() NormalizerSpec {
	return NormalizerSpec{AddDummyPrefix: true, RemoveExtraWhitespaces: true, EscapeWhitespaces: true}
}

// eachField calls fn for every field of a protobuf message. v is the
// payload for bytes fields, x the value for varint/fixed fields.
func eachField(b []byte, fn func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		var v []byte
		var x uint64
		switch typ {
		case protowire.VarintType:
			x, n = protowire.ConsumeVarint(b)
		case protowire.Fixed32Type:
			var y uint32
			y, n = protowire.ConsumeFixed32(b)
			x = uint64(y)
		case protowire.Fixed64Type:
			x, n = protowire.ConsumeFixed64(b)
		case protowire.BytesType:
			v, n = protowire.ConsumeBytes(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return fmt.Errorf("field %d: %v", num, protowire.ParseError(n))
		}
		b = b[n:]
		if err := fn(num, typ, v, x); err != nil {
			return err
		}
	}
	return nil
}

func wantType(num protowire.Number, typ, want protowire.Type) error {
	if typ != want {
		return fmt.Errorf("field %d: wire type %d, want %d", num, typ, want)
	}
	return nil
}

func parsePiece(b []byte) (Piece, error) {
	p := Piece{Type: Normal}
	err := eachField(b, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
		switch num {
		case 1:
			if err := wantType(num, typ, protowire.BytesType); err != nil {
				return err
			}
			p.Piece = string(v)
		case 2:
			if err := wantType(num, typ, protowire.Fixed32Type); err != nil {
				return err
			}
			p.Score = math.Float32frombits(uint32(x))
		case 3:
			if err := wantType(num, typ, protowire.VarintType); err != nil {
				return err
			}
			p.Type = PieceType(int32(x))
		}
		return nil
	})
	return p, err
}

func parseTrainer(b []byte, t *TrainerSpec) error {
	return eachField(b, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
		str := func(dst *string) error {
			if err := wantType(num, typ, protowire.BytesType); err != nil {
				return err
			}
			*dst = string(v)
			return nil
		}
		varint := func() (int64, error) {
			if err := wantType(num, typ, protowire.VarintType); err != nil {
				return 0, err
			}
			return int64(x), nil
		}
		var err error
		var i int64
		switch num {
		case 3:
			i, err = varint()
			t.ModelType = ModelType(i)
		case 4:
			i, err = varint()
			t.VocabSize = int32(i)
		case 10:
			if err = wantType(num, typ, protowire.Fixed32Type); err == nil {
				t.CharacterCoverage = math.Float32frombits(uint32(x))
			}
		case 20:
			i, err = varint()
			t.MaxSentencePieceLength = int32(i)
		case 24:
			i, err = varint()
			t.TreatWhitespaceAsSuffix = i != 0
		case 25:
			i, err = varint()
			t.SplitDigits = i != 0
		case 35:
			i, err = varint()
			t.ByteFallback = i != 0
		case 40:
			i, err = varint()
			t.UnkID = int32(i)
		case 41:
			i, err = varint()
			t.BosID = int32(i)
		case 42:
			i, err = varint()
			t.EosID = int32(i)
		case 43:
			i, err = varint()
			t.PadID = int32(i)
		case 44:
			err = str(&t.UnkSurface)
		case 45:
			err = str(&t.UnkPiece)
		case 46:
			err = str(&t.BosPiece)
		case 47:
			err = str(&t.EosPiece)
		case 48:
			err = str(&t.PadPiece)
		}
		return err
	})
}

func parseNormalizer(b []byte, n *NormalizerSpec) error {
	return eachField(b, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
		var err error
		switch num {
		case 1:
			if err = wantType(num, typ, protowire.BytesType); err == nil {
				n.Name = string(v)
			}
		case 2:
			if err = wantType(num, typ, protowire.BytesType); err == nil {
				n.PrecompiledCharsmap = append([]byte(nil), v...)
			}
		case 3:
			if err = wantType(num, typ, protowire.VarintType); err == nil {
				n.AddDummyPrefix = x != 0
			}
		case 4:
			if err = wantType(num, typ, protowire.VarintType); err == nil {
				n.RemoveExtraWhitespaces = x != 0
			}
		case 5:
			if err = wantType(num, typ, protowire.VarintType); err == nil {
				n.EscapeWhitespaces = x != 0
			}
		case 6:
			if err = wantType(num, typ, protowire.BytesType); err == nil {
				n.NormalizationRuleTSV = string(v)
			}
		}
		return err
	})
}

// init builds the lookup tables and checks the vocabulary the way
// SentencePiece does when it loads a model.
func (m *Model) init() error {
	m.pieceIDs = make(map[string]int32, len(m.Pieces))
	m.reserved = map[string]int32{}
	m.unk = -1
	for i := range m.byteIDs {
		m.byteIDs[i] = -1
	}
	for i, p := range m.Pieces {
		if p.Piece == "" {
			return fmt.Errorf("piece %d is empty", i)
		}
		if !utf8.ValidString(p.Piece) {
			return fmt.Errorf("piece %d (%q) is not valid UTF-8", i, p.Piece)
		}
		var dst map[string]int32
		switch p.Type {
		case Normal, UserDefined, Unused:
			dst = m.pieceIDs
		case Unknown, Control, Byte:
			dst = m.reserved
		default:
			return fmt.Errorf("piece %d (%q) has unknown type %d", i, p.Piece, int32(p.Type))
		}
		if _, dup := dst[p.Piece]; dup {
			return fmt.Errorf("piece %q is defined twice", p.Piece)
		}
		dst[p.Piece] = int32(i)
		if len(p.Piece) > m.maxPieceLen {
			m.maxPieceLen = len(p.Piece)
		}
		switch p.Type {
		case UserDefined:
			m.userDefined = append(m.userDefined, p.Piece)
		case Unused:
			m.hasUnused = true
		case Unknown:
			if m.unk >= 0 {
				return errors.New("the model defines two unknown pieces")
			}
			m.unk = int32(i)
		case Byte:
			if !m.Trainer.ByteFallback {
				return fmt.Errorf("byte piece %q found although byte_fallback is off", p.Piece)
			}
			c, ok := pieceToByte(p.Piece)
			if !ok {
				return fmt.Errorf("byte piece %q is invalid", p.Piece)
			}
			m.byteIDs[c] = int32(i)
		}
	}
	if m.unk < 0 {
		return errors.New("the model has no unknown piece")
	}
	if m.Trainer.ByteFallback {
		for c, id := range m.byteIDs {
			if id < 0 {
				return fmt.Errorf("byte_fallback is on but there is no piece for byte 0x%02X", c)
			}
		}
	}
	var err error
	if m.norm, err = newNormalizer(&m.Normalizer, m.userDefined); err != nil {
		return err
	}
	// Words (a run starting at ▁ after a non-▁ character) can be encoded
	// separately when no vocabulary piece contains a non-▁ character
	// followed by ▁: no merge can then cross such a boundary. Unused pieces
	// keep a string-wide resegmentation table, so they force whole-string
	// encoding too.
	m.splitAtWS = m.Normalizer.EscapeWhitespaces && !m.hasUnused
	if m.splitAtWS {
		for p := range m.pieceIDs {
			if spaceAfterNonSpace(p) {
				m.splitAtWS = false
				break
			}
		}
	}
	return nil
}

// spaceAfterNonSpace reports whether p has a ▁ right after a character
// that is not ▁.
func spaceAfterNonSpace(p string) bool {
	prevSpace := true
	for _, r := range p {
		isSpace := r == '\u2581'
		if isSpace && !prevSpace {
			return true
		}
		prevSpace = isSpace
	}
	return false
}

func pieceToByte(p string) (byte, bool) {
	if len(p) != 6 || !strings.HasPrefix(p, "<0x") || p[5] != '>' {
		return 0, false
	}
	var v byte
	for _, c := range []byte(p[3:5]) {
		switch {
		case c >= '0' && c <= '9':
			v = v<<4 | (c - '0')
		case c >= 'A' && c <= 'F':
			v = v<<4 | (c - 'A' + 10)
		default:
			return 0, false
		}
	}
	return v, true
}

// ByteToPiece is the byte-fallback piece of b, e.g. "<0x0A>".
func ByteToPiece(b byte) string { return fmt.Sprintf("<0x%02X>", b) }

// VocabSize is the number of pieces.
func (m *Model) VocabSize() int { return len(m.Pieces) }

// PieceToID is the id of a piece as SentencePiece maps it: reserved pieces
// first, then the vocabulary, else the unknown id.
func (m *Model) PieceToID(p string) int32 {
	if id, ok := m.reserved[p]; ok {
		return id
	}
	if id, ok := m.pieceIDs[p]; ok {
		return id
	}
	return m.unk
}

// IDToPiece is the piece of id ("" when out of range).
func (m *Model) IDToPiece(id int32) string {
	if id < 0 || int(id) >= len(m.Pieces) {
		return ""
	}
	return m.Pieces[id].Piece
}

// UnkID is the id of the unknown piece.
func (m *Model) UnkID() int32 { return m.unk }

func (m *Model) controlID(piece string) int32 {
	if id, ok := m.reserved[piece]; ok && m.Pieces[id].Type == Control {
		return id
	}
	return -1
}

// BosID is the begin-of-sentence id, -1 when the model has none.
func (m *Model) BosID() int32 { return m.controlID(m.Trainer.BosPiece) }

// EosID is the end-of-sentence id, -1 when the model has none.
func (m *Model) EosID() int32 { return m.controlID(m.Trainer.EosPiece) }

// PadID is the padding id, -1 when the model has none.
func (m *Model) PadID() int32 { return m.controlID(m.Trainer.PadPiece) }

// ByteFallback reports whether unknown characters become byte pieces.
func (m *Model) ByteFallback() bool { return m.Trainer.ByteFallback }
