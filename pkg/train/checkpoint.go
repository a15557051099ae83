package train

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/alpaca-go/alpaca/pkg/backend"
	"github.com/alpaca-go/alpaca/pkg/llama"
	"github.com/alpaca-go/alpaca/pkg/safetensors"
	"github.com/alpaca-go/alpaca/pkg/xio"
)

// Checkpoint file names (docs/formats.md, "Trainer checkpoint").
const (
	StateFile     = "trainer_state.json"
	OptimizerFile = "optimizer.safetensors"
	StateFormat   = "alpaca-go-trainer-state"
	StateVersion  = 1
)

// TokenizerFiles are copied from the source model directory into every
// checkpoint and into the final model, when present.
var TokenizerFiles = []string{"tokenizer.model", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.json", "generation_config.json"}

// State is trainer_state.json.
type State struct {
	Format     string  `json:"format"`
	Version    int     `json:"version"`
	Step       int     `json:"step"`        // optimizer steps done
	TotalSteps int     `json:"total_steps"` // of the whole run
	Epoch      int     `json:"epoch"`       // data position: epoch of the next step (0-based)
	BatchIdx   int     `json:"batch_in_epoch"`
	Finished   bool    `json:"finished"`
	Elapsed    float64 `json:"elapsed"`
	TokensSeen int64   `json:"tokens_seen"`
	LastLoss   float64 `json:"last_loss"`
	RNG        struct {
		Algorithm string `json:"algorithm"`
		Seed      int64  `json:"seed"`
		Epoch     int    `json:"epoch"`
	} `json:"rng"`
	Data struct {
		Name        string `json:"name"`
		SHA256      string `json:"sha256"` // over the examples' ids and masks
		Examples    int    `json:"examples"`
		Tokens      int    `json:"tokens"`
		Vocab       int    `json:"vocab"`
		Fingerprint string `json:"tokenizer_sha256"`
	} `json:"data"`
	Model struct {
		Source       string `json:"source"`        // model directory training started from
		WeightsDType string `json:"weights_dtype"` // dtype of model.safetensors here
	} `json:"model"`
	Optimizer struct {
		Type string `json:"type"`
		File string `json:"file"`
		Step int64  `json:"step"`
	} `json:"optimizer"`
	Threads int    `json:"threads"` // CPU threads: results depend on them, resuming uses the same
	Warmup  int    `json:"warmup_steps_resolved"`
	Config  Config `json:"config"`
	// Saving is how the run writes checkpoints (--save-every,
	// --save-limit): not part of the trajectory, but a resumed run keeps
	// doing it unless told otherwise.
	Saving Saving `json:"saving"`
	// LoRA training: the dropout passes drawn so far (the masks' stream).
	LoRA *struct {
		DropoutCalls uint64 `json:"dropout_calls"`
	} `json:"lora,omitempty"`
	Eval *EvalState `json:"eval,omitempty"`
}

// Saving is the checkpointing of a run.
type Saving struct {
	Every int `json:"save_every"` // steps between checkpoints (0: none)
	Limit int `json:"save_limit"` // newest checkpoints kept (0: all)
}

// Limits on what a trainer_state.json may say: it is read from disk and
// not trusted to size anything.
const (
	maxStateBytes = 1 << 20
	maxThreads    = 4096
	maxEpochs     = 1 << 20
	maxSteps      = 1 << 40
	maxSeqLen     = 1 << 20
	maxBatch      = 1 << 24
)

// CheckState checks what a checkpoint's state says on its own (before the
// model or the data are looked at): the format, the counters' ranges, the
// optimizer file's name and a configuration within sane limits. Restore
// checks the rest against the data.
func CheckState(s *State) error {
	c := s.Config
	b := c.Batch
	switch {
	case s.Format != StateFormat || s.Version != StateVersion:
		return fmt.Errorf("not a trainer state of format %s version %d", StateFormat, StateVersion)
	case s.TotalSteps < 1 || s.TotalSteps > maxSteps:
		return fmt.Errorf("total_steps %d is outside [1, %d]", s.TotalSteps, int64(maxSteps))
	case s.Step < 0 || s.Step > s.TotalSteps:
		return fmt.Errorf("step %d is outside [0, total_steps %d]", s.Step, s.TotalSteps)
	case s.Finished != (s.Step == s.TotalSteps):
		return fmt.Errorf("finished is %v at step %d of %d", s.Finished, s.Step, s.TotalSteps)
	case s.Epoch < 0 || s.Epoch > s.Step:
		return fmt.Errorf("epoch %d is outside [0, step %d]", s.Epoch, s.Step)
	case s.BatchIdx < 0 || s.BatchIdx > s.Step:
		return fmt.Errorf("batch_in_epoch %d is outside [0, step %d]", s.BatchIdx, s.Step)
	case s.Optimizer.Step < 0 || s.Optimizer.Step > int64(s.Step):
		return fmt.Errorf("optimizer.step %d is outside [0, step %d]", s.Optimizer.Step, s.Step)
	case s.Optimizer.File != "" && !plainName(s.Optimizer.File):
		return fmt.Errorf("optimizer.file %q is not a file name inside the checkpoint", s.Optimizer.File)
	case s.Threads < 0 || s.Threads > maxThreads:
		return fmt.Errorf("threads %d is outside [0, %d]", s.Threads, maxThreads)
	case !finiteNonNeg(s.Elapsed) || s.TokensSeen < 0:
		return fmt.Errorf("elapsed %v or tokens_seen %d is not a non-negative number", s.Elapsed, s.TokensSeen)
	case s.Warmup < 0 || s.Warmup > s.TotalSteps:
		return fmt.Errorf("warmup_steps_resolved %d is outside [0, total_steps %d]", s.Warmup, s.TotalSteps)
	case c.Epochs > maxEpochs || c.MaxSteps > maxSteps || c.WarmupSteps > maxSteps:
		return fmt.Errorf("config: epochs %d, max_steps %d or warmup_steps %d is too large", c.Epochs, c.MaxSteps, c.WarmupSteps)
	case b.SeqLen > maxSeqLen || b.MicroBatch > maxBatch || b.BatchSize > maxBatch || b.BatchTokens > maxBatch*maxSeqLen/1024:
		return fmt.Errorf("config: seq_len %d, micro_batch %d, batch_size %d or batch_tokens %d is too large", b.SeqLen, b.MicroBatch, b.BatchSize, b.BatchTokens)
	case s.Saving.Every < 0 || s.Saving.Limit < 0:
		return fmt.Errorf("saving: save_every %d or save_limit %d is negative", s.Saving.Every, s.Saving.Limit)
	}
	if err := c.Validate(); err != nil {
		return fmt.Errorf("config: %v", err)
	}
	return nil
}

// plainName reports whether name is one file name: no separator, not "."
// or "..", nothing that would reach outside the checkpoint directory.
func plainName(name string) bool {
	return name != "" && name != "." && name != ".." && !strings.ContainsAny(name, "/\\\x00") && filepath.IsLocal(name)
}

func finiteNonNeg(x float64) bool { return x >= 0 && !math.IsInf(x, 0) }

// State captures the trainer's state.
func (t *Trainer) State(lastLoss float64) *State {
	s := &State{Format: StateFormat, Version: StateVersion, Step: t.Step, TotalSteps: t.TotalSteps,
		Epoch: t.Epoch, BatchIdx: t.BatchIdx, Finished: t.Done(), Elapsed: t.Elapsed,
		TokensSeen: t.TokensSeen, LastLoss: lastLoss, Warmup: t.Sched.Warmup, Config: t.Cfg, Threads: t.Threads}
	s.RNG.Algorithm = "pcg64(seed, epoch) fisher-yates"
	s.RNG.Seed, s.RNG.Epoch = t.Cfg.Batch.Seed, t.Epoch
	s.Data.Name, s.Data.SHA256 = t.Data.Name, t.Data.Hash
	s.Data.Examples, s.Data.Tokens, s.Data.Vocab = len(t.Data.Examples), t.Data.Tokens, t.Data.Header.VocabSize
	s.Data.Fingerprint = t.Data.Header.FingerprintHex()
	s.Model.Source, s.Model.WeightsDType = t.Source, "float32"
	s.Optimizer.Type, s.Optimizer.File, s.Optimizer.Step = "adamw", OptimizerFile, t.Opt.Step
	s.Saving = t.Saving
	if t.LoRA != nil {
		s.LoRA = &struct {
			DropoutCalls uint64 `json:"dropout_calls"`
		}{t.LoRA.DropoutCalls}
	}
	s.Eval = t.Eval
	return s
}

// ReadState reads dir/trainer_state.json.
func ReadState(dir string) (*State, error) {
	b, err := readSmall(filepath.Join(dir, StateFile), maxStateBytes)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%s is not a trainer checkpoint (no %s)", dir, StateFile)
		}
		return nil, err
	}
	s, err := ParseState(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", filepath.Join(dir, StateFile), err)
	}
	return s, nil
}

// ParseState decodes and checks (CheckState) the bytes of a
// trainer_state.json.
func ParseState(b []byte) (*State, error) {
	if len(b) > maxStateBytes {
		return nil, fmt.Errorf("%d bytes; a trainer state is at most %d", len(b), maxStateBytes)
	}
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, err
	}
	if err := CheckState(&s); err != nil {
		return nil, err
	}
	return &s, nil
}

// FindCheckpoint resolves a --resume argument: a checkpoint directory, or
// an output directory, whose newest checkpoint-N (or itself, when it holds a
// finished run) is taken.
func FindCheckpoint(dir string) (string, error) {
	if _, err := os.Stat(filepath.Join(dir, StateFile)); err == nil {
		return dir, nil
	}
	cks, err := ListCheckpoints(dir)
	if err != nil {
		return "", err
	}
	if len(cks) == 0 {
		return "", fmt.Errorf("%s holds no trainer checkpoint (no %s, no checkpoint-N/)", dir, StateFile)
	}
	return cks[len(cks)-1], nil
}

// ListCheckpoints returns dir/checkpoint-N directories that hold a state
// file, by increasing N.
func ListCheckpoints(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%s: no such directory", dir)
		}
		return nil, err
	}
	type ck struct {
		n    int
		path string
	}
	var cks []ck
	for _, e := range ents {
		rest, ok := strings.CutPrefix(e.Name(), "checkpoint-")
		if !ok || !e.IsDir() {
			continue
		}
		n, err := strconv.Atoi(rest)
		if err != nil {
			continue
		}
		p := filepath.Join(dir, e.Name())
		if _, err := os.Stat(filepath.Join(p, StateFile)); err == nil {
			cks = append(cks, ck{n, p})
		}
	}
	sort.Slice(cks, func(a, b int) bool { return cks[a].n < cks[b].n })
	out := make([]string, len(cks))
	for i, c := range cks {
		out[i] = c.path
	}
	return out, nil
}

// SaveOptimizer writes the AdamW moments to path as safetensors:
// "<param>.exp_avg" and "<param>.exp_avg_sq" (F32, the parameter's shape),
// each parameter's view of the moment arenas downloaded and written in chunks
// of optChunk elements, the file renamed into place at the end.
func (t *Trainer) SaveOptimizer(path string) error {
	var infos []safetensors.TensorInfo
	for _, p := range t.params {
		shape := make([]int64, len(p.Shape))
		for j, s := range p.Shape {
			shape[j] = int64(s)
		}
		infos = append(infos,
			safetensors.TensorInfo{Name: p.Name + ".exp_avg", DType: safetensors.F32, Shape: shape},
			safetensors.TensorInfo{Name: p.Name + ".exp_avg_sq", DType: safetensors.F32, Shape: shape})
	}
	meta := map[string]string{
		"format": "alpaca-go-adamw", "step": strconv.FormatInt(t.Opt.Step, 10),
		"beta1": fmt.Sprint(t.Opt.Beta1), "beta2": fmt.Sprint(t.Opt.Beta2),
		"eps": fmt.Sprint(t.Opt.Eps), "weight_decay": fmt.Sprint(t.Opt.WeightDecay),
	}
	w, err := safetensors.NewWriter(path, infos, meta)
	if err != nil {
		return err
	}
	host := make([]float32, optChunk)
	for _, p := range t.params {
		for _, part := range []struct {
			suffix string
			v      backend.Buffer
		}{{".exp_avg", t.Opt.ExpAvg}, {".exp_avg_sq", t.Opt.ExpAvgSq}} {
			if err := llama.StreamTensor(t.be, w, p.Name+part.suffix, part.v.Slice(p.Off, p.Off+p.N), safetensors.F32, host); err != nil {
				w.Abort()
				return err
			}
		}
	}
	return w.Commit()
}

// optChunk is the number of elements SaveOptimizer downloads at once (a
// variable so that tests can make chunks smaller than tensors).
var optChunk = 1 << 20

// LoadOptimizer reads the moments written by SaveOptimizer.
func (t *Trainer) LoadOptimizer(path string, step int64) error {
	f, err := safetensors.Open(path)
	if err != nil {
		return fmt.Errorf("optimizer state: %w", err)
	}
	defer f.Close()
	for _, p := range t.params {
		for _, part := range []struct {
			suffix string
			dst    backend.Buffer
		}{{".exp_avg", t.Opt.ExpAvg}, {".exp_avg_sq", t.Opt.ExpAvgSq}} {
			v, err := f.Float32(p.Name + part.suffix)
			if err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
			if len(v) != p.N {
				return fmt.Errorf("%s: %s has %d values, the model's parameter %d", path, p.Name+part.suffix, len(v), p.N)
			}
			t.be.Upload(part.dst.Slice(p.Off, p.Off+p.N), v)
		}
	}
	t.Opt.Step = step
	return nil
}

// LoadWeights copies the F32 weights of the model directory dir into m's
// parameters (by name).
func LoadWeights(m Model, dir string) error {
	f, err := safetensors.OpenDir(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	w := m.Weights()
	for _, p := range m.Params() {
		v, err := f.Float32(p.Name)
		if err != nil {
			return fmt.Errorf("%s: %w", dir, err)
		}
		if len(v) != p.N {
			return fmt.Errorf("%s: %s has %d values, the model %d", dir, p.Name, len(v), p.N)
		}
		m.Backend().Upload(w.Slice(p.Off, p.Off+p.N), v)
	}
	return nil
}

// Restore puts the trainer in the state of checkpoint dir (state and
// optimizer; the model's weights must already be the checkpoint's). It
// checks that the checkpoint belongs to this configuration and data.
func (t *Trainer) Restore(dir string, s *State) error {
	if s.Data.SHA256 != t.Data.Hash {
		return fmt.Errorf("%s was trained on other data (%d examples, sha256 %.12s…) than %s (%d examples, sha256 %.12s…)",
			dir, s.Data.Examples, s.Data.SHA256, t.Data.Name, len(t.Data.Examples), t.Data.Hash)
	}
	if diff := ConfigDiff(s.Config, t.Cfg); diff != "" {
		return fmt.Errorf("%s was made with other settings: %s", dir, diff)
	}
	if s.TotalSteps != t.TotalSteps {
		return fmt.Errorf("%s: the run has %d steps, the checkpoint says %d", dir, t.TotalSteps, s.TotalSteps)
	}
	if s.Model.WeightsDType != "float32" {
		return fmt.Errorf("%s holds %s weights; resuming needs the float32 master weights of a checkpoint-N directory", dir, s.Model.WeightsDType)
	}
	// The data position must be one this data set has: an epoch of the
	// run and a global batch of that epoch.
	where := filepath.Join(dir, StateFile)
	if s.Step >= s.TotalSteps {
		return fmt.Errorf("%s: step %d: the run is over (%d steps) but the state is not marked finished", where, s.Step, s.TotalSteps)
	}
	if t.Cfg.MaxSteps <= 0 && s.Epoch >= t.Cfg.Epochs {
		return fmt.Errorf("%s: epoch %d is past the run's %d epochs", where, s.Epoch, t.Cfg.Epochs)
	}
	if n := len(t.epochBatches(s.Epoch)); s.BatchIdx >= n {
		return fmt.Errorf("%s: batch_in_epoch %d, but epoch %d has %d batches", where, s.BatchIdx, s.Epoch, n)
	}
	if s.Optimizer.File == "" {
		return fmt.Errorf("%s: no optimizer state (optimizer.file is empty); resuming needs a checkpoint-N directory", where)
	}
	if t.Eval != nil && s.Eval != nil && t.Eval.Fraction > 0 && (t.Eval.HeldOut != s.Eval.HeldOut || t.Eval.SHA256 != s.Eval.SHA256) {
		return fmt.Errorf("%s held out %d examples (sha256 %.12s…), this run %d (sha256 %.12s…)", dir, s.Eval.HeldOut, s.Eval.SHA256, t.Eval.HeldOut, t.Eval.SHA256)
	}
	if t.LoRA != nil {
		if s.LoRA == nil {
			return fmt.Errorf("%s is not a LoRA checkpoint", dir)
		}
		t.LoRA.DropoutCalls = s.LoRA.DropoutCalls
	}
	if err := t.LoadOptimizer(filepath.Join(dir, s.Optimizer.File), s.Optimizer.Step); err != nil {
		return err
	}
	t.Step, t.Epoch, t.BatchIdx = s.Step, s.Epoch, s.BatchIdx
	t.Elapsed, t.TokensSeen = s.Elapsed, s.TokensSeen
	return nil
}

// ConfigDiff describes how two configurations differ ("" when equal).
func ConfigDiff(a, b Config) string {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	var ma, mb map[string]any
	json.Unmarshal(ja, &ma)
	json.Unmarshal(jb, &mb)
	flat := func(m map[string]any) map[string]any {
		out := map[string]any{}
		for k, v := range m {
			if sub, ok := v.(map[string]any); ok {
				for k2, v2 := range sub {
					out[k2] = v2
				}
			} else {
				out[k] = v
			}
		}
		return out
	}
	fa, fb := flat(ma), flat(mb)
	var keys []string
	for k := range fa {
		keys = append(keys, k)
	}
	for k := range fb {
		if _, ok := fa[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var d []string
	for _, k := range keys {
		if fmt.Sprint(fa[k]) != fmt.Sprint(fb[k]) {
			d = append(d, fmt.Sprintf("%s %v in the checkpoint, %v now", k, show(fa[k]), show(fb[k])))
		}
	}
	return strings.Join(d, "; ")
}

func show(v any) string {
	if v == nil {
		return "unset"
	}
	return fmt.Sprint(v)
}

// SaveDir writes the trainer's state into a new directory final, atomically:
// everything goes to a temporary directory beside it, which is renamed
// into place (an existing final is replaced). The model is saved as dtype;
// tokenizer files are copied from srcModel.
func (t *Trainer) SaveDir(final, dtype string, withOptimizer bool, lastLoss float64) (err error) {
	out, err := xio.CreateDir(final)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			out.Abort()
		}
	}()
	if err := t.writeInto(out.Path, dtype, withOptimizer, lastLoss); err != nil {
		return err
	}
	return out.Commit() // replaces an existing final
}

func (t *Trainer) writeInto(dir, dtype string, withOptimizer bool, lastLoss float64) error {
	if err := t.writeModel(dir, dtype); err != nil {
		return err
	}
	st := t.State(lastLoss)
	st.Model.WeightsDType = dtype
	if withOptimizer {
		if err := t.SaveOptimizer(filepath.Join(dir, OptimizerFile)); err != nil {
			return fmt.Errorf("saving the optimizer state: %w", err)
		}
	} else {
		st.Optimizer.File = ""
	}
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return xio.AtomicWriteFile(filepath.Join(dir, StateFile), append(b, '\n'))
}

// FinalFiles are the files whose presence marks a finished model (or LoRA
// adapter) directory; SaveFinal renames them into place last.
var FinalFiles = []string{"config.json", "adapter_config.json"}

// HasFinal reports whether dir holds a final model or adapter written by
// SaveFinal (or any Hugging Face model directory).
func HasFinal(dir string) bool {
	for _, n := range FinalFiles {
		if st, err := os.Stat(filepath.Join(dir, n)); err == nil && st.Mode().IsRegular() {
			return true
		}
	}
	return false
}

// SaveFinal writes the final model into out (which may already hold
// checkpoints): only what a model needs, the weights (or the adapter),
// config.json, the tokenizer files and generation_config.json; the
// optimizer state and trainer_state.json stay in the checkpoints. The files
// are written to a temporary directory, then each is renamed into out,
// config.json (adapter_config.json) last, so that its presence means the
// model is complete.
func (t *Trainer) SaveFinal(out, dtype string) (err error) {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	// xio's temporary directory (".final.tmp-*", locked while written, so
	// that a killed run's is cleaned by the next one).
	td, err := xio.CreateDir(filepath.Join(out, "final"))
	if err != nil {
		return err
	}
	defer td.Abort()
	tmp := td.Path
	if err := t.writeModel(tmp, dtype); err != nil {
		return err
	}
	if err := writeGenerationConfig(tmp); err != nil {
		return err
	}
	return moveFinal(tmp, out)
}

// writeModel writes the model (weights and config, or the adapter) as
// dtype into dir, with the tokenizer files it was trained with.
func (t *Trainer) writeModel(dir, dtype string) error {
	if err := t.Model.Save(dir, dtype); err != nil {
		return fmt.Errorf("saving the model: %w", err)
	}
	return writeMissing(dir, t.Files)
}

// writeMissing writes each of files into dir unless dir already has a file
// of that name (written by Save).
func writeMissing(dir string, files map[string][]byte) error {
	for _, name := range sortedKeys(files) {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			continue
		}
		if err := os.WriteFile(filepath.Join(dir, name), files[name], 0o644); err != nil {
			return err
		}
	}
	return nil
}

// writeGenerationConfig writes Hugging Face's generation_config.json (the
// special token ids of config.json) beside a model's config.json, unless
// the source model's own was copied in; adapter directories get none.
func writeGenerationConfig(dir string) error {
	if _, err := os.Stat(filepath.Join(dir, "generation_config.json")); err == nil {
		return nil
	}
	raw, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var cfg map[string]any
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return fmt.Errorf("config.json: %w", err)
	}
	gen := map[string]any{"_from_model_config": true}
	for _, k := range []string{"bos_token_id", "eos_token_id", "pad_token_id"} {
		if v, ok := cfg[k]; ok && v != nil {
			gen[k] = v
		}
	}
	b, err := json.MarshalIndent(gen, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "generation_config.json"), append(b, '\n'), 0o644)
}

// moveFinal renames the files of tmp into out, the FinalFiles last. Files of
// an older final model that the new one does not have (an optimizer state
// or trainer_state.json written by earlier versions) are removed first.
func moveFinal(tmp, out string) error {
	ents, err := os.ReadDir(tmp)
	if err != nil {
		return err
	}
	for _, n := range append([]string{StateFile, OptimizerFile}, FinalFiles...) {
		os.Remove(filepath.Join(out, n))
	}
	var last []string
	for _, e := range ents {
		if slices.Contains(FinalFiles, e.Name()) {
			last = append(last, e.Name())
			continue
		}
		if err := os.Rename(filepath.Join(tmp, e.Name()), filepath.Join(out, e.Name())); err != nil {
			return err
		}
	}
	for _, n := range last {
		if err := os.Rename(filepath.Join(tmp, n), filepath.Join(out, n)); err != nil {
			return err
		}
	}
	return nil
}

// PruneCheckpoints keeps the newest keep checkpoint-N directories of out
// (keep <= 0: keep all).
func PruneCheckpoints(out string, keep int) error {
	if keep <= 0 {
		return nil
	}
	cks, err := ListCheckpoints(out)
	if err != nil {
		return err
	}
	for len(cks) > keep {
		// Renamed out of the way first (one atomic step), then removed: a
		// kill never leaves a partial checkpoint-N under its own name, and
		// the hidden leftover is cleaned by the next run (xio.CleanStaleDir).
		gone := filepath.Join(out, "."+filepath.Base(cks[0])+xio.TempInfix+"pruned")
		os.RemoveAll(gone)
		if err := os.Rename(cks[0], gone); err != nil {
			return err
		}
		if err := os.RemoveAll(gone); err != nil {
			return err
		}
		cks = cks[1:]
	}
	return nil
}

// readSmall reads a file of at most limit bytes, refusing a bigger one or
// anything that is not a regular file (a FIFO would block).
func readSmall(path string, limit int64) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	if fi.Size() > limit {
		return nil, fmt.Errorf("%s: %d bytes; at most %d expected", path, fi.Size(), limit)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err == nil && int64(len(b)) > limit {
		err = fmt.Errorf("%s: more than %d bytes", path, limit)
	}
	return b, err
}

// ReadModelFiles reads the tokenizer files present in a model directory
// (TokenizerFiles), to be written into every checkpoint.
func ReadModelFiles(dir string) (map[string][]byte, error) {
	files := map[string][]byte{}
	for _, name := range TokenizerFiles {
		b, err := xio.ReadRegular(filepath.Join(dir, name), 1<<30)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		files[name] = b
	}
	return files, nil
}

func sortedKeys(m map[string][]byte) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
