package sentencepiece

import (
	"math"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
)

// trainingText makes a deterministic corpus of our own: the fixture corpus
// plus pseudo-words from a syllable list, so that spm_train can reach a few
// hundred pieces.
func trainingText(t testing.TB, lines int) string {
	var sb strings.Builder
	for _, f := range readFixtures(t, filepath.Join("testdata", "corpus.jsonl")) {
		for _, l := range strings.Split(f.Text, "\n") {
			if strings.TrimSpace(l) != "" {
				sb.WriteString(l)
				sb.WriteByte('\n')
			}
		}
	}
	syl := []string{"ka", "to", "ri", "an", "ing", "the", "er", "lo", "mi", "sun", "é", "中", "文", "ß", "qu", "x", "42", "7", ",", ".", "!", "ション", "😀"}
	r := rand.New(rand.NewSource(1))
	for i := 0; i < lines; i++ {
		n := 3 + r.Intn(12)
		for w := 0; w < n; w++ {
			if w > 0 {
				sb.WriteString(strings.Repeat(" ", 1+r.Intn(2)*r.Intn(3)))
			}
			k := 1 + r.Intn(4)
			for j := 0; j < k; j++ {
				sb.WriteString(syl[r.Intn(len(syl))])
			}
		}
		sb.WriteByte('\n')
	}
	return sb.String()
}

// spmTrain runs spm_train with args on text and returns the model path.
func spmTrain(t *testing.T, dir, name, text string, args ...string) string {
	t.Helper()
	in := filepath.Join(dir, name+".txt")
	if err := os.WriteFile(in, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	prefix := filepath.Join(dir, name)
	all := append([]string{"--input=" + in, "--model_prefix=" + prefix, "--minloglevel=2"}, args...)
	cmd := exec.Command("spm_train", all...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("spm_train %v: %v\n%s", args, err, out)
	}
	return prefix + ".model"
}

func testTexts(t testing.TB) []string {
	texts := textsOf(readFixtures(t, filepath.Join("testdata", "corpus.jsonl")))
	texts = append(texts, strings.Split(trainingText(t, 300), "\n")[:400]...)
	texts = append(texts, "a<sep>b [INST] kato<sep><sep>x", " kato kato  kato", "<sep>", "[INST]<s>hi</s>", "ka to <ctl>中文 中文中文")
	return texts
}

// TestSpmTrainedModels trains BPE models with spm_train under the settings
// real users pick (nmt_nfkc default, nfkc_cf, identity, byte fallback,
// user-defined and control symbols, no whitespace split, whitespace-only
// pieces) and checks our ids against the reference library on each.
func TestSpmTrainedModels(t *testing.T) {
	if _, err := exec.LookPath("spm_train"); err != nil {
		t.Skip("spm_train not installed (apt-get install sentencepiece)")
	}
	if !havePySPM() {
		t.Skip("python3-sentencepiece not installed")
	}
	dir := t.TempDir()
	text := trainingText(t, 3000)
	texts := testTexts(t)
	configs := []struct {
		name string
		args []string
	}{
		{"nmt_nfkc", []string{"--model_type=bpe", "--vocab_size=400", "--hard_vocab_limit=false", "--user_defined_symbols=<sep>,ＡＢ"}},
		{"nfkc_cf_nofallback", []string{"--model_type=bpe", "--vocab_size=300", "--hard_vocab_limit=false", "--normalization_rule_name=nfkc_cf", "--character_coverage=0.98"}},
		{"identity_bytes", []string{"--model_type=bpe", "--vocab_size=600", "--hard_vocab_limit=false", "--normalization_rule_name=identity",
			"--byte_fallback=true", "--remove_extra_whitespaces=false", "--split_digits=true", "--allow_whitespace_only_pieces=true",
			"--user_defined_symbols=<sep>,ka to,中文", "--control_symbols=<ctl>"}},
		{"nosplit", []string{"--model_type=bpe", "--vocab_size=500", "--hard_vocab_limit=false", "--split_by_whitespace=false", "--normalization_rule_name=identity", "--byte_fallback=true"}},
		{"no_dummy_prefix", []string{"--model_type=bpe", "--vocab_size=400", "--hard_vocab_limit=false", "--add_dummy_prefix=false"}},
	}
	for _, c := range configs {
		t.Run(c.name, func(t *testing.T) {
			path := spmTrain(t, dir, c.name, text, c.args...)
			m, err := Load(path)
			if err != nil {
				t.Fatal(err)
			}
			if c.name == "nosplit" && m.splitAtWS {
				t.Error("nosplit model has no piece crossing a word start: the whole-string path is not tested")
			}
			compareIDs(t, m, texts, refEncode(t, path, texts))
		})
	}
	t.Run("unused pieces", func(t *testing.T) {
		// Mark every 7th merged piece of an spm model UNUSED: the encoder
		// still merges through them and splits them back at the end.
		src, err := os.ReadFile(filepath.Join("testdata", "small_bpe.model"))
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, "unused.model")
		if err := os.WriteFile(path, markUnused(t, src, 7), 0o644); err != nil {
			t.Fatal(err)
		}
		m, err := Load(path)
		if err != nil {
			t.Fatal(err)
		}
		if !m.hasUnused {
			t.Fatal("no unused pieces")
		}
		compareIDs(t, m, texts, refEncode(t, path, texts))
	})
	t.Run("suffix refused", func(t *testing.T) {
		path := spmTrain(t, dir, "suffix", text, "--model_type=bpe", "--vocab_size=300", "--hard_vocab_limit=false", "--treat_whitespace_as_suffix=true")
		if _, err := Load(path); err == nil || !strings.Contains(err.Error(), "treat_whitespace_as_suffix") {
			t.Fatalf("err = %v, want a clear refusal", err)
		}
	})
	t.Run("unigram refused", func(t *testing.T) {
		path := spmTrain(t, dir, "unigram", text, "--vocab_size=300", "--hard_vocab_limit=false")
		_, err := Load(path)
		if err == nil || !strings.Contains(err.Error(), "model type unigram is not supported") {
			t.Fatalf("err = %v, want a clear refusal", err)
		}
	})
}

// markUnused rewrites a ModelProto so that every nth normal piece of more
// than one character becomes UNUSED; other fields are copied as they are.
func markUnused(t *testing.T, b []byte, nth int) []byte {
	var out []byte
	k := 0
	err := eachField(b, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
		if num != 1 {
			switch typ {
			case protowire.BytesType:
				out = protowire.AppendTag(out, num, typ)
				out = protowire.AppendBytes(out, v)
			case protowire.VarintType:
				out = protowire.AppendTag(out, num, typ)
				out = protowire.AppendVarint(out, x)
			default:
				t.Fatalf("unexpected top-level field %d", num)
			}
			return nil
		}
		p, err := parsePiece(v)
		if err != nil {
			return err
		}
		if p.Type == Normal && utf8.RuneCountInString(p.Piece) > 1 {
			k++
			if k%nth == 0 {
				p.Type = Unused
			}
		}
		var pb []byte
		pb = protowire.AppendTag(pb, 1, protowire.BytesType)
		pb = protowire.AppendString(pb, p.Piece)
		pb = protowire.AppendTag(pb, 2, protowire.Fixed32Type)
		pb = protowire.AppendFixed32(pb, math.Float32bits(p.Score))
		pb = protowire.AppendTag(pb, 3, protowire.VarintType)
		pb = protowire.AppendVarint(pb, uint64(p.Type))
		out = protowire.AppendTag(out, 1, protowire.BytesType)
		out = protowire.AppendBytes(out, pb)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
