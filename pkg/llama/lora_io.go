package llama

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"

	"github.com/alpaca-go/alpaca/pkg/backend"
	"github.com/alpaca-go/alpaca/pkg/safetensors"
	"github.com/alpaca-go/alpaca/pkg/torchbin"
	"github.com/alpaca-go/alpaca/pkg/xio"
)

// PEFT adapter directory files.
const (
	AdapterConfigFile  = "adapter_config.json"
	AdapterWeightsFile = "adapter_model.safetensors"
)

// AdapterBinFile is the older PEFT weights file (a torch.save pickle),
// read when there is no AdapterWeightsFile.
const AdapterBinFile = "adapter_model.bin"

// adapterTensors is what LoadAdapter reads: a safetensors file or a
// torch pickle.
type adapterTensors interface {
	Names() []string
	Info(name string) (safetensors.TensorInfo, bool)
	Bytes(name string) ([]byte, error)
	Close() error
}

// maxAdapterConfigBytes bounds adapter_config.json (untrusted input).
const maxAdapterConfigBytes = 1 << 20

// adapterConfig is PEFT's LoraConfig as save_pretrained writes it (the
// fields this reader understands; a few that would change the arithmetic
// are checked and refused).
type adapterConfig struct {
	PeftType       string          `json:"peft_type"`
	TaskType       string          `json:"task_type"`
	BaseModel      string          `json:"base_model_name_or_path"`
	R              int             `json:"r"`
	Alpha          float64         `json:"lora_alpha"`
	Dropout        float64         `json:"lora_dropout"`
	Targets        json.RawMessage `json:"target_modules"`
	Bias           string          `json:"bias"`
	FanInFanOut    bool            `json:"fan_in_fan_out"`
	UseRSLoRA      bool            `json:"use_rslora"`
	UseDoRA        bool            `json:"use_dora"`
	ModulesToSave  []string        `json:"modules_to_save"`
	RankPattern    map[string]any  `json:"rank_pattern"`
	AlphaPattern   map[string]any  `json:"alpha_pattern"`
	InferenceMode  bool            `json:"inference_mode"`
	InitLoraWeight any             `json:"init_lora_weights"`
}

// ReadAdapterConfig reads dir/adapter_config.json: the LoRA configuration
// and the base model path it records. Settings that change PEFT's
// arithmetic and are not implemented here (rsLoRA, DoRA, rank or alpha
// patterns, biases, modules_to_save, fan_in_fan_out) are errors.
func ReadAdapterConfig(dir string) (LoRAConfig, string, error) {
	path := filepath.Join(dir, AdapterConfigFile)
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return LoRAConfig{}, "", fmt.Errorf("%s is not a PEFT adapter directory (no %s)", dir, AdapterConfigFile)
		}
		return LoRAConfig{}, "", err
	}
	defer f.Close()
	b := make([]byte, maxAdapterConfigBytes+1)
	n, _ := readFull(f, b)
	if n > maxAdapterConfigBytes {
		return LoRAConfig{}, "", fmt.Errorf("%s: larger than %d bytes", path, maxAdapterConfigBytes)
	}
	return parseAdapterConfig(path, b[:n])
}

func readFull(f *os.File, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		k, err := f.Read(b[n:])
		n += k
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

func parseAdapterConfig(path string, b []byte) (LoRAConfig, string, error) {
	var ac adapterConfig
	if err := json.Unmarshal(b, &ac); err != nil {
		return LoRAConfig{}, "", fmt.Errorf("%s: %v", path, err)
	}
	bad := func(format string, a ...any) (LoRAConfig, string, error) {
		return LoRAConfig{}, "", fmt.Errorf("%s: %s", path, fmt.Sprintf(format, a...))
	}
	switch {
	case ac.PeftType != "LORA":
		return bad("peft_type %q: only LORA adapters are supported", ac.PeftType)
	case ac.Bias != "" && ac.Bias != "none":
		return bad("bias %q: only bias \"none\" is supported", ac.Bias)
	case ac.FanInFanOut:
		return bad("fan_in_fan_out adapters (GPT-2 Conv1D) are not supported")
	case ac.UseRSLoRA:
		return bad("use_rslora (scaling alpha/sqrt(r)) is not supported")
	case ac.UseDoRA:
		return bad("use_dora is not supported")
	case len(ac.ModulesToSave) > 0:
		return bad("modules_to_save %v is not supported (only LoRA matrices)", ac.ModulesToSave)
	case len(ac.RankPattern) > 0 || len(ac.AlphaPattern) > 0:
		return bad("rank_pattern/alpha_pattern (per-module r or alpha) is not supported")
	}
	cfg := LoRAConfig{R: ac.R, Alpha: ac.Alpha, Dropout: ac.Dropout}
	var list []string
	var one string
	switch {
	case json.Unmarshal(ac.Targets, &list) == nil:
		cfg.Targets = list
	case json.Unmarshal(ac.Targets, &one) == nil:
		// a regular expression over module names; the tensors say which
		// modules it matched
		cfg.Targets = nil
		re, err := regexp.Compile(one)
		if err != nil {
			return bad("target_modules %q: %v", one, err)
		}
		for _, t := range LoRATargets {
			if re.MatchString("model.layers.0.self_attn."+t) || re.MatchString("model.layers.0.mlp."+t) || re.MatchString(t) {
				cfg.Targets = append(cfg.Targets, t)
			}
		}
	default:
		return bad("target_modules is neither a list of names nor a string")
	}
	slices.SortFunc(cfg.Targets, func(a, b string) int { return targetKind(a) - targetKind(b) })
	if err := cfg.Validate(); err != nil {
		return bad("%v", err)
	}
	return cfg, ac.BaseModel, nil
}

var peftRe = regexp.MustCompile(`^base_model\.model\.model\.layers\.(\d+)\.(self_attn|mlp)\.([a-z_]+)\.lora_([AB])(?:\.default)?\.weight$`)

// LoadAdapter reads a PEFT adapter directory (adapter_config.json and
// adapter_model.safetensors, PEFT's tensor names) and attaches it to m,
// freezing the base. Every tensor must be a LoRA A/B of a known module
// with the shapes the config implies ([r, in], [out, r]); a module must
// have both; each must be one of the config's target_modules.
func (m *Model) LoadAdapter(dir string) (*LoRA, error) {
	cfg, base, err := ReadAdapterConfig(dir)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, AdapterWeightsFile)
	var st adapterTensors
	if _, err := os.Stat(path); err == nil {
		if st, err = safetensors.Open(path); err != nil {
			return nil, err
		}
	} else if bin := filepath.Join(dir, AdapterBinFile); fileExists(bin) {
		// older PEFT: a torch.save pickle, read without executing it
		path = bin
		if st, err = torchbin.Open(bin); err != nil {
			return nil, err
		}
	} else {
		return nil, fmt.Errorf("%s: no %s (or %s)", dir, AdapterWeightsFile, AdapterBinFile)
	}
	defer st.Close()
	type key struct{ l, k int }
	have := map[key][2]string{}
	for _, name := range st.Names() {
		mt := peftRe.FindStringSubmatch(name)
		if mt == nil {
			return nil, fmt.Errorf("%s: tensor %q is not a LoRA matrix of a LLaMA layer", path, name)
		}
		l, err := strconv.Atoi(mt[1])
		if err != nil || l >= m.Config.NumHiddenLayers {
			return nil, fmt.Errorf("%s: tensor %q: the model has %d layers", path, name, m.Config.NumHiddenLayers)
		}
		k := targetKind(mt[3])
		if k < 0 || (k >= tGate) != (mt[2] == "mlp") {
			return nil, fmt.Errorf("%s: tensor %q: unknown module %s.%s", path, name, mt[2], mt[3])
		}
		if !slices.Contains(cfg.Targets, mt[3]) {
			return nil, fmt.Errorf("%s: tensor %q: %s is not in target_modules %v", path, name, mt[3], cfg.Targets)
		}
		e := have[key{l, k}]
		i := 0
		in, out := m.dims(k)
		want := []int{cfg.R, in}
		if mt[4] == "B" {
			i = 1
			want = []int{out, cfg.R}
		}
		// shapes first: the allocation below follows from them (and
		// the tensors' bytes are in the file)
		if info, _ := st.Info(name); !sameShape(info.Shape, want) {
			return nil, fmt.Errorf("%s: tensor %q has shape %v, want %v (r %d)", path, name, info.Shape, want, cfg.R)
		}
		if e[i] != "" {
			return nil, fmt.Errorf("%s: tensors %q and %q are the same matrix", path, e[i], name)
		}
		e[i] = name
		have[key{l, k}] = e
	}
	for k, e := range have {
		if e[0] == "" || e[1] == "" {
			return nil, fmt.Errorf("%s: layer %d %s has lora_A without lora_B or the reverse", path, k.l, LoRATargets[k.k])
		}
	}
	l, err := m.newLoRA(cfg, func(li, k int) bool { _, ok := have[key{li, k}]; return ok })
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	l.BaseModel = base
	for li, ms := range l.mods {
		for k, md := range ms {
			if md == nil {
				continue
			}
			e := have[key{li, k}]
			for i, p := range []*Param{md.a, md.b} {
				info, _ := st.Info(e[i])
				if !sameShape(info.Shape, p.Shape) {
					m.freeLoRA(l)
					return nil, fmt.Errorf("%s: tensor %q has shape %v, want %v (r %d)", path, e[i], info.Shape, p.Shape, cfg.R)
				}
				raw, err := st.Bytes(e[i])
				var v []float32
				if err == nil {
					v, err = safetensors.DecodeFloat32(info.DType, raw)
				}
				if err != nil {
					m.freeLoRA(l)
					return nil, fmt.Errorf("%s: tensor %q: %w", path, e[i], err)
				}
				m.be.Upload(p.w, v)
			}
		}
	}
	m.attach(l)
	return l, nil
}

func (m *Model) freeLoRA(l *LoRA) {
	old := m.lora
	m.lora = l
	m.DetachLoRA()
	m.lora = old
}

// SaveAdapter writes the attached adapter into dir (created if needed) as
// PEFT's save_pretrained does: adapter_config.json and
// adapter_model.safetensors (fp32, PEFT's names), each written to a
// temporary file and renamed.
func (m *Model) SaveAdapter(dir string) error {
	l := m.lora
	if l == nil {
		return errors.New("llama: no adapter attached")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	c := l.cfg
	ac := map[string]any{
		"peft_type": "LORA", "task_type": "CAUSAL_LM", "base_model_name_or_path": l.BaseModel,
		"r": c.R, "lora_alpha": c.Alpha, "lora_dropout": c.Dropout, "target_modules": c.Targets,
		"bias": "none", "fan_in_fan_out": false, "inference_mode": true, "init_lora_weights": true,
		"modules_to_save": nil, "layers_to_transform": nil, "layers_pattern": nil,
		"rank_pattern": map[string]any{}, "alpha_pattern": map[string]any{},
		"use_rslora": false, "use_dora": false, "revision": nil,
	}
	b, err := json.MarshalIndent(ac, "", "  ")
	if err != nil {
		return err
	}
	var infos []safetensors.TensorInfo
	for _, p := range l.params {
		infos = append(infos, safetensors.TensorInfo{Name: p.Name, DType: safetensors.F32, Shape: []int64{int64(p.Shape[0]), int64(p.Shape[1])}})
	}
	w, err := safetensors.NewWriter(filepath.Join(dir, AdapterWeightsFile), infos, map[string]string{"format": "pt"})
	if err != nil {
		return err
	}
	host := make([]float32, 1<<16)
	for _, p := range l.params {
		if err := StreamTensor(m.be, w, p.Name, p.w, safetensors.F32, host); err != nil {
			w.Abort()
			return err
		}
	}
	if err := w.Commit(); err != nil {
		return err
	}
	return xio.AtomicWriteFile(filepath.Join(dir, AdapterConfigFile), append(b, '\n'))
}

// MergeLoRA folds the attached adapter into the base weights, W += (α/r)·B·A
// computed in float32, and detaches it. On a model from Open the targeted
// weights (memory-mapped, or bf16/f16) are copied to fp32 buffers first;
// the rest stay as they are.
func (m *Model) MergeLoRA() error {
	l := m.lora
	if l == nil {
		return errors.New("llama: no adapter attached")
	}
	be := m.be
	for li, ms := range l.mods {
		for k, md := range ms {
			if md == nil {
				continue
			}
			p := m.layers[li].target(k)
			if m.wArena.IsNil() {
				// Open's weights: possibly the read-only mapped file, or
				// bf16/f16; merge into an fp32 copy
				nb, err := be.Alloc(backend.F32, p.N)
				if err != nil {
					return fmt.Errorf("llama: merging %s: %w", p.Name, err)
				}
				if p.w.DType() == backend.F32 {
					be.Copy(nb, p.w)
				} else {
					host := make([]float32, p.N)
					be.Download(host, p.w)
					be.Upload(nb, host)
				}
				p.w = nb // a mapped old buffer is released by Close
			}
			delta, err := be.Alloc(backend.F32, p.N)
			if err != nil {
				return fmt.Errorf("llama: merging %s: %w", p.Name, err)
			}
			// delta = (B·A)·scale, then W += delta (PEFT: W + (B @ A) * scaling)
			be.MatMul(false, false, md.out, md.in, l.cfg.R, 1, md.b.w, l.cfg.R, md.a.w, md.in, 0, delta, md.in)
			be.Scale(delta, l.scale)
			be.Add(p.w, delta)
			be.Free(delta)
		}
	}
	m.DetachLoRA()
	return nil
}
