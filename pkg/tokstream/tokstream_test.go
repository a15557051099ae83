package tokstream

import (
	"bytes"
	"errors"
	"io"
	"math/rand"
	"reflect"
	"strings"
	"testing"
)

func sample(r *rand.Rand, vocab, n int) []Example {
	var out []Example
	for i := 0; i < n; i++ {
		l := r.Intn(40)
		ex := Example{IDs: make([]int32, l), Mask: make([]bool, l)}
		for j := range ex.IDs {
			ex.IDs[j] = int32(r.Intn(vocab))
			ex.Mask[j] = r.Intn(3) > 0
		}
		out = append(out, ex)
	}
	return out
}

func encode(t testing.TB, h Header, exs []Example) []byte {
	var buf bytes.Buffer
	w, err := NewWriter(&buf, h)
	if err != nil {
		t.Fatal(err)
	}
	for _, ex := range exs {
		if err := w.Write(ex); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func decode(b []byte) ([]Example, Header, error) {
	r, err := NewReader(bytes.NewReader(b), "s")
	if err != nil {
		return nil, Header{}, err
	}
	var out []Example
	for {
		ex, err := r.Next()
		if err == io.EOF {
			return out, r.Header(), nil
		}
		if err != nil {
			return out, r.Header(), err
		}
		out = append(out, ex)
	}
}

func TestRoundTrip(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	for _, vocab := range []int{32000, 70000} {
		exs := sample(r, vocab, 200)
		h := Header{VocabSize: vocab, BOS: 1, EOS: 2, Pad: -1, Meta: map[string]any{"max_len": 512.0}}
		h.Fingerprint[0] = 0xAB
		b := encode(t, h, exs)
		got, gh, err := decode(b)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(exs) {
			t.Fatalf("got %d examples", len(got))
		}
		for i := range exs {
			if len(exs[i].IDs) == 0 {
				if len(got[i].IDs) != 0 {
					t.Fatal("empty example changed")
				}
				continue
			}
			if !reflect.DeepEqual(got[i], exs[i]) {
				t.Fatalf("example %d differs", i)
			}
		}
		wantW := 2
		if vocab > 65536 {
			wantW = 4
		}
		if gh.IDWidth != wantW || gh.BOS != 1 || gh.EOS != 2 || gh.Pad != -1 || gh.Fingerprint[0] != 0xAB || gh.Meta["max_len"] != 512.0 {
			t.Fatalf("header %+v", gh)
		}
	}
}

func TestBadStreams(t *testing.T) {
	exs := sample(rand.New(rand.NewSource(2)), 100, 5)
	good := encode(t, Header{VocabSize: 100, BOS: 1, EOS: 2, Pad: -1}, exs)
	otherVersion := append([]byte{}, good...)
	otherVersion[8] = 9
	outOfVocab := encode(t, Header{VocabSize: 1000, BOS: 1, EOS: 2, Pad: -1}, []Example{{IDs: []int32{500}, Mask: []bool{true}}})
	outOfVocab[12] = 100 // vocab now 100+3*256 -> keep simple: patch vocab to 100
	outOfVocab[13] = 0
	cases := []struct {
		name string
		b    []byte
		want string
	}{
		{"empty", nil, "not a token stream"},
		{"foreign", []byte("{\"a\":1}\n{\"b\":2}\n"), "not a token stream"},
		{"version", otherVersion, "version 9 is not supported"},
		{"header cut", good[:20], "truncated token stream header"},
		{"no end marker", good[:len(good)-20], "without its end marker"},
		{"record cut", good[:70], "truncated"},
		{"trailing", append(append([]byte{}, good...), 0), "data after the end marker"},
		{"out of vocab", outOfVocab, "outside the vocabulary"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := decode(c.b)
			var fe *FormatError
			if err == nil || !errors.As(err, &fe) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want %q", err, c.want)
			}
		})
	}
	if err := (&Writer{}).Write(Example{IDs: []int32{1}}); err == nil {
		t.Fatal("mask/ids mismatch accepted")
	}
}

func FuzzReader(f *testing.F) {
	f.Add(encode(f, Header{VocabSize: 50, BOS: 1, EOS: 2, Pad: -1}, sample(rand.New(rand.NewSource(3)), 50, 3)))
	f.Add([]byte("ALPTOKS\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		exs, h, err := decode(b)
		if err != nil {
			return
		}
		// a stream that decodes re-encodes to one that decodes the same
		again, h2, err := decode(encode(t, h, exs))
		if err != nil || len(again) != len(exs) || h2.VocabSize != h.VocabSize || h2.IDWidth != h.IDWidth {
			t.Fatalf("re-encoding differs: %v", err)
		}
		for i := range exs {
			if len(exs[i].IDs) > 0 && !reflect.DeepEqual(again[i], exs[i]) {
				t.Fatalf("example %d differs after re-encoding", i)
			}
		}
	})
}
