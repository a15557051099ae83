package train

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/alpaca-go/alpaca/pkg/tokstream"
	"github.com/alpaca-go/alpaca/pkg/xio"
)

// Dataset is a token stream held in memory.
type Dataset struct {
	Name     string
	Header   tokstream.Header
	Examples []tokstream.Example
	Tokens   int
	Targets  int    // positions that count in the loss (mask bits beyond the first token)
	Hash     string // SHA-256 over the examples (ids and masks), to recognise the data on resume
}

// ReadDataset reads a whole token stream from r.
func ReadDataset(r io.Reader, name string) (*Dataset, error) {
	sr, err := tokstream.NewReader(r, name)
	if err != nil {
		return nil, err
	}
	d := &Dataset{Name: name, Header: sr.Header()}
	h := sha256.New()
	var buf []byte
	for {
		ex, err := sr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		buf = binary.LittleEndian.AppendUint32(buf[:0], uint32(len(ex.IDs)))
		for i, id := range ex.IDs {
			buf = binary.LittleEndian.AppendUint32(buf, uint32(id))
			if ex.Mask[i] {
				buf = append(buf, 1)
				if i > 0 {
					d.Targets++
				}
			} else {
				buf = append(buf, 0)
			}
		}
		h.Write(buf)
		d.Tokens += len(ex.IDs)
		d.Examples = append(d.Examples, ex)
	}
	d.Hash = hex.EncodeToString(h.Sum(nil))
	if len(d.Examples) == 0 {
		return nil, fmt.Errorf("%s: the token stream has no examples", name)
	}
	if d.Targets == 0 {
		return nil, fmt.Errorf("%s: no token of the stream is a training target (every mask bit is 0)", name)
	}
	return d, nil
}

// OpenDataset reads the token stream at path ("" or "-" = stdin; zstd is
// detected).
func OpenDataset(path string) (*Dataset, error) { return openDataset(path, os.Stdin) }

func openDataset(path string, stdin io.Reader) (*Dataset, error) {
	var in *xio.Input
	var err error
	if xio.IsStdio(path) {
		in, err = xio.NewInput(stdin, "<stdin>", nil)
	} else {
		in, err = xio.Open(path)
	}
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%s: no such file", path)
		}
		return nil, err
	}
	defer in.Close()
	return ReadDataset(in, in.Name)
}

// CheckModel verifies that the stream was made for a model with vocabulary
// modelVocab and the tokenizer whose .model file has SHA-256 fingerprint
// (nil: not checked). The stream's vocabulary may be one smaller than the
// model's: Alpaca's added pad token.
func (d *Dataset) CheckModel(modelVocab int, fingerprint []byte, modelDir string) error {
	sv := d.Header.VocabSize
	if sv != modelVocab && sv != modelVocab-1 {
		return fmt.Errorf("%s: the token stream's vocabulary is %d but the model in %s has %d (tokenized with another tokenizer?)",
			d.Name, sv, modelDir, modelVocab)
	}
	if fingerprint != nil {
		var zero [32]byte
		if d.Header.Fingerprint == zero {
			return nil // a stream that does not record its tokenizer
		}
		if !bytes.Equal(d.Header.Fingerprint[:], fingerprint) {
			return fmt.Errorf("%s: the token stream was made with tokenizer %.12s… but the model in %s has tokenizer.model %.12s… (tokenize again with --model %s/tokenizer.model)",
				d.Name, d.Header.FingerprintHex(), modelDir, hex.EncodeToString(fingerprint), modelDir)
		}
	}
	return nil
}

// FileFingerprint is the SHA-256 of a file, or nil when it does not exist.
func FileFingerprint(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	s := sha256.Sum256(b)
	return s[:], nil
}

func sha256Sum(b []byte) []byte {
	s := sha256.Sum256(b)
	return s[:]
}
