package generate

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"github.com/alpaca-go/alpaca/internal/testutil"
	"github.com/alpaca-go/alpaca/pkg/gguf"
	"github.com/alpaca-go/alpaca/pkg/llama"
	"github.com/alpaca-go/alpaca/pkg/safetensors"
)

// llamaCpp finds the reference: node and node-llama-cpp (see
// scripts/llamacpp/run.mjs); the test is skipped when either is absent.
func llamaCpp(t *testing.T) (node, script string) {
	t.Helper()
	root := testutil.RepoRoot()
	dir := os.Getenv("NODE_LLAMA_CPP_DIR")
	if dir == "" {
		dir = filepath.Join(root, ".cache", "llamacpp")
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "node-llama-cpp", "package.json")); err != nil {
		t.Skipf("llama.cpp reference absent: install it with `npm i -E node-llama-cpp@3.21.1` in %s (or set NODE_LLAMA_CPP_DIR): skipping", dir)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed: skipping the llama.cpp comparison")
	}
	t.Setenv("NODE_LLAMA_CPP_DIR", dir)
	return node, filepath.Join(root, "scripts", "llamacpp", "run.mjs")
}

type cppJob struct {
	Text string  `json:"text,omitempty"`
	IDs  []int32 `json:"ids,omitempty"`
	New  int     `json:"new"`
}

type cppResult struct {
	IDs    []int32 `json:"ids"`
	Greedy []int32 `json:"greedy"`
}

func runLlamaCpp(t *testing.T, gg string, jobs []cppJob) []cppResult {
	t.Helper()
	node, script := llamaCpp(t)
	spec, _ := json.Marshal(map[string]any{"threads": 2, "context": 256, "jobs": jobs})
	jp := filepath.Join(t.TempDir(), "jobs.json")
	if err := os.WriteFile(jp, spec, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(node, script, gg, jp)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("llama.cpp: %v\n%s", err, stderr.String())
	}
	var res []cppResult
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		var r cppResult
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("llama.cpp output %q: %v", sc.Text(), err)
		}
		res = append(res, r)
	}
	if len(res) != len(jobs) {
		t.Fatalf("llama.cpp answered %d jobs of %d\n%s", len(res), len(jobs), stderr.String())
	}
	return res
}

var cppPrompts = []string{
	"Hello world, how are you?",
	"Give three tips for staying healthy.",
	"  leading spaces and\nnew lines\n\n### Response:\n",
	"Ünïcödé: naïve café — 東京 🚀",
	"x",
}

// TestLlamaCppParity exports random GQA and MHA models to GGUF (f32, f16)
// and checks that llama.cpp tokenizes the prompts as we do and decodes
// the same greedy ids as our generator on the same weights.
func TestLlamaCppParity(t *testing.T) {
	if testing.Short() {
		t.Skip("llama.cpp comparison is slow: skipped with -short")
	}
	llamaCpp(t)
	tokPath := "../sentencepiece/testdata/small_bpe.model" // 800 pieces, byte fallback
	for _, tc := range []struct {
		name  string
		nkv   int
		tied  bool
		dtype string
		gtype string
	}{
		{"gqa-f32", 2, false, "float32", "f32"},
		{"gqa-f16", 2, false, "float16", "f16"},
		{"mha-tied-f32", 4, true, "float32", "f32"},
		{"mha-tied-f16", 4, true, "float16", "f16"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := llama.DefaultConfig()
			cfg.HiddenSize, cfg.IntermediateSize, cfg.NumHiddenLayers = 64, 128, 2
			cfg.NumAttentionHeads, cfg.NumKeyValueHeads = 4, tc.nkv
			cfg.MaxPositionEmbeddings, cfg.InitializerRange, cfg.TieWordEmbeddings = 256, 0.3, tc.tied
			cfg.Extra = map[string]json.RawMessage{"bos_token_id": json.RawMessage("1"), "eos_token_id": json.RawMessage("2")}
			cfg.VocabSize = 800
			m := llama.New(cfg, 7)
			m.TokenizerPath = tokPath
			dir, gg := saveAndExport(t, m, tc.dtype, tc.gtype)
			mod, err := Load(dir, Options{Threads: 2})
			if err != nil {
				t.Fatal(err)
			}
			mod.EOS = -1 // random weights: compare a fixed number of ids
			const n = 16
			var jobs []cppJob
			for _, p := range cppPrompts {
				jobs = append(jobs, cppJob{Text: p, New: n})
			}
			res := runLlamaCpp(t, gg, jobs)
			for i, p := range cppPrompts {
				ours := mod.EncodePrompt(p)
				if !slices.Equal(ours, res[i].IDs) {
					t.Errorf("prompt %q: tokens\n ours      %v\n llama.cpp %v", p, ours, res[i].IDs)
					continue
				}
				r := mod.Generate(&Request{Prompt: ours, MaxNewTokens: n, Sample: DefaultSampleParams()})
				if r.Err != nil {
					t.Fatal(r.Err)
				}
				if !slices.Equal(r.IDs, res[i].Greedy) {
					t.Errorf("prompt %q: greedy ids\n ours      %v\n llama.cpp %v", p, r.IDs, res[i].Greedy)
				}
			}
		})
	}
}

// TestLlamaCppTokenize checks that llama.cpp, reading the vocabulary from
// our GGUF export, tokenizes prompts as we do with the LLaMA tokenizer.
func TestLlamaCppTokenize(t *testing.T) {
	if testing.Short() {
		t.Skip("llama.cpp comparison is slow: skipped with -short")
	}
	llamaCpp(t)
	tokPath := testutil.SharedData(t, "llama-tokenizer.model")
	cfg := llama.DefaultConfig()
	cfg.HiddenSize, cfg.IntermediateSize, cfg.NumHiddenLayers = 32, 64, 1
	cfg.NumAttentionHeads, cfg.NumKeyValueHeads, cfg.MaxPositionEmbeddings = 2, 2, 256
	m := llama.New(cfg, 1)
	m.TokenizerPath = tokPath
	dir, gg := saveAndExport(t, m, "float32", "f32")
	mod, err := Load(dir, Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	prompts := append([]string{
		"Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n### Instruction:\nName three primary colors.\n\n### Response:\n",
		"def f(x):\n    return x**2  # tabs\tand   spaces",
		"",
		" ",
		"12345 67.89 $1,000",
	}, cppPrompts...)
	var jobs []cppJob
	for _, p := range prompts {
		jobs = append(jobs, cppJob{Text: p, New: 0})
	}
	res := runLlamaCpp(t, gg, jobs)
	for i, p := range prompts {
		if ours := mod.EncodePrompt(p); !slices.Equal(ours, res[i].IDs) {
			t.Errorf("prompt %q: tokens\n ours      %v\n llama.cpp %v", p, ours, res[i].IDs)
		}
	}
}

// TestLlamaCppQ8_0 checks the Q8_0 export through llama.cpp's outputs: its
// greedy ids on our q8_0 GGUF equal ours on the same weights passed
// through our quantize-dequantize (llama.cpp also rounds the activations
// to 8 bits inside its Q8_0 matmul, so this holds when the greedy choices
// are not close; the models are built to make them clear).
func TestLlamaCppQ8_0(t *testing.T) {
	if testing.Short() {
		t.Skip("llama.cpp comparison is slow: skipped with -short")
	}
	llamaCpp(t)
	cfg := llama.DefaultConfig()
	cfg.HiddenSize, cfg.IntermediateSize, cfg.NumHiddenLayers = 64, 128, 2
	cfg.NumAttentionHeads, cfg.NumKeyValueHeads, cfg.VocabSize = 4, 2, 800
	cfg.MaxPositionEmbeddings, cfg.InitializerRange = 256, 0.3
	cfg.Extra = map[string]json.RawMessage{"bos_token_id": json.RawMessage("1"), "eos_token_id": json.RawMessage("2")}
	m := llama.New(cfg, 11)
	m.TokenizerPath = smallTok
	dir, gg := saveAndExport(t, m, "float32", "q8_0")
	// the same weights through Q8_0 and back, written as f32 safetensors
	qdir := filepath.Join(t.TempDir(), "q")
	if err := m.Save(qdir, "float32"); err != nil {
		t.Fatal(err)
	}
	src, err := safetensors.Open(filepath.Join(dir, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	var ts []safetensors.Tensor
	for _, name := range src.Names() {
		info, _ := src.Info(name)
		w, err := src.Float32(name)
		if err != nil {
			t.Fatal(err)
		}
		if len(info.Shape) == 2 {
			if w, err = gguf.Dequantize(gguf.Q8_0, gguf.QuantizeQ8_0(nil, w), len(w)); err != nil {
				t.Fatal(err)
			}
		}
		data, _ := safetensors.EncodeFloat32(safetensors.F32, w)
		ts = append(ts, safetensors.Tensor{Name: name, DType: safetensors.F32, Shape: info.Shape, Data: data})
	}
	src.Close()
	if err := safetensors.WriteFile(filepath.Join(qdir, "model.safetensors"), ts, map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}
	mod, err := Load(qdir, Options{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	mod.EOS = -1
	const n = 8
	var jobs []cppJob
	for _, p := range cppPrompts {
		jobs = append(jobs, cppJob{Text: p, New: n})
	}
	res := runLlamaCpp(t, gg, jobs)
	for i, p := range cppPrompts {
		r := mod.Generate(&Request{Prompt: mod.EncodePrompt(p), MaxNewTokens: n, Sample: DefaultSampleParams()})
		if !slices.Equal(r.IDs, res[i].Greedy) {
			t.Errorf("prompt %q: greedy ids\n ours (q8_0 weights) %v\n llama.cpp           %v", p, r.IDs, res[i].Greedy)
		}
	}
}

// saveAndExport saves m as a model directory with weights of dtype and
// exports it to a GGUF file of type gtype; it returns both paths.
func saveAndExport(t *testing.T, m *llama.Model, dtype, gtype string) (dir, gg string) {
	t.Helper()
	dir = filepath.Join(t.TempDir(), "model")
	if err := m.Save(dir, dtype); err != nil {
		t.Fatal(err)
	}
	gg = filepath.Join(t.TempDir(), "m.gguf")
	f, err := os.Create(gg)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := gguf.Export(f, gguf.ExportOptions{Model: dir, Type: gtype}); err != nil {
		t.Fatal(err)
	}
	return dir, gg
}
