package generate

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/alpaca-go/alpaca/pkg/llama"
	"github.com/alpaca-go/alpaca/pkg/safetensors"
	"github.com/alpaca-go/alpaca/pkg/sentencepiece"
)

// greedyFixture is testdata/greedy.json (scripts/fixtures/generate_greedy.py).
type greedyFixture map[string]map[string][]struct {
	Prompt []int32 `json:"prompt"`
	Greedy []int32 `json:"greedy"`
}

func loadGreedy(t *testing.T) greedyFixture {
	t.Helper()
	b, err := os.ReadFile("testdata/greedy.json")
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	fx := greedyFixture{}
	for _, name := range []string{"gqa", "mha"} {
		var m map[string][]struct {
			Prompt []int32 `json:"prompt"`
			Greedy []int32 `json:"greedy"`
		}
		if err := json.Unmarshal(raw[name], &m); err != nil {
			t.Fatal(err)
		}
		fx[name] = m
	}
	return fx
}

// convertModel copies the fixture model src into a temp dir with its
// weights stored as dt.
func convertModel(t *testing.T, src string, dt safetensors.DType) string {
	t.Helper()
	dir := t.TempDir()
	cfg, err := llama.LoadConfig(filepath.Join(src, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.TorchDtype = dt.TorchName()
	cj, err := cfg.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), cj, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := safetensors.Open(filepath.Join(src, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var ts []safetensors.Tensor
	for _, n := range f.Names() {
		info, _ := f.Info(n)
		w, err := f.Float32(n)
		if err != nil {
			t.Fatal(err)
		}
		data, err := safetensors.EncodeFloat32(dt, w)
		if err != nil {
			t.Fatal(err)
		}
		ts = append(ts, safetensors.Tensor{Name: n, DType: dt, Shape: info.Shape, Data: data})
	}
	if err := safetensors.WriteFile(filepath.Join(dir, "model.safetensors"), ts, map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}
	return dir
}

// testTokenizer is any SentencePiece model: the greedy tests compare ids,
// the text is not looked at.
func testTokenizer(t *testing.T) *sentencepiece.Model {
	t.Helper()
	tok, err := sentencepiece.Load("../sentencepiece/testdata/small_bpe.model")
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func openTestModel(t *testing.T, dir string) *Model {
	t.Helper()
	lm, err := OpenLM(dir, Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := llama.LoadConfig(filepath.Join(dir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	return &Model{Dir: dir, Name: "test", LM: lm, Tok: testTokenizer(t), Config: cfg, BOS: 1, EOS: -1, MaxLen: cfg.MaxPositionEmbeddings}
}

func TestGreedyMatchesTorch(t *testing.T) {
	fx := loadGreedy(t)
	for _, name := range []string{"gqa", "mha"} {
		for _, dt := range []safetensors.DType{safetensors.F32, safetensors.BF16} {
			cases := fx[name][dt.TorchName()]
			if len(cases) == 0 {
				t.Fatalf("%s %s: no fixture cases", name, dt)
			}
			m := openTestModel(t, convertModel(t, filepath.Join("testdata", name), dt))
			// one at a time
			for i, c := range cases {
				res := m.Generate(&Request{Prompt: c.Prompt, MaxNewTokens: len(c.Greedy), Sample: DefaultSampleParams()})
				if res.Err != nil {
					t.Fatalf("%s %s case %d: %v", name, dt, i, res.Err)
				}
				if !slices.Equal(res.IDs, c.Greedy) {
					t.Errorf("%s %s case %d: greedy ids\n got  %v\n want %v (torch)", name, dt, i, res.IDs, c.Greedy)
				}
				if res.FinishReason != FinishLength || res.CompletionTokens != len(c.Greedy) || res.PromptTokens != len(c.Prompt) {
					t.Errorf("%s %s case %d: finish %q, tokens %d/%d", name, dt, i, res.FinishReason, res.PromptTokens, res.CompletionTokens)
				}
			}
			// all together: prefill one by one, then batched decoding
			var jobs []*job
			for _, c := range cases {
				j, err := m.newJob(&Request{Prompt: c.Prompt, MaxNewTokens: len(c.Greedy), Sample: DefaultSampleParams()})
				if err != nil {
					t.Fatal(err)
				}
				jobs = append(jobs, j)
			}
			for steps := 0; ; steps++ {
				busy := false
				for _, j := range jobs {
					busy = busy || !j.done
				}
				if !busy {
					break
				}
				if steps > 100 {
					t.Fatal("batched decoding does not end")
				}
				m.step(jobs)
			}
			for i, j := range jobs {
				if !slices.Equal(j.res.IDs, cases[i].Greedy) {
					t.Errorf("%s %s batched case %d: greedy ids\n got  %v\n want %v (torch)", name, dt, i, j.res.IDs, cases[i].Greedy)
				}
			}
		}
	}
}
