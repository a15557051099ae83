package train

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/alpaca-go/alpaca/pkg/backend"
	"github.com/alpaca-go/alpaca/pkg/llama"
	"github.com/alpaca-go/alpaca/pkg/tokstream"
)

// loraModel is the trainer's view of a model with an adapter attached:
// the trainable parameters, arenas and saved files are the adapter's; the
// forward/backward pass is the model's (frozen base + adapter).
type loraModel struct {
	*llama.Model
}

func (l loraModel) Params() []*llama.Param  { return l.LoRA().Params() }
func (l loraModel) Weights() backend.Buffer { return l.LoRA().Weights() }
func (l loraModel) Grads() backend.Buffer   { return l.LoRA().Grads() }
func (l loraModel) ZeroGrad()               { l.LoRA().ZeroGrad() }

// Save writes the adapter (PEFT layout, fp32 whatever dtype says).
func (l loraModel) Save(dir string, _ string) error { return l.SaveAdapter(dir) }

// NewLoRAModel wraps m, which must have an adapter attached, as a trainer
// Model that trains the adapter only.
func NewLoRAModel(m *llama.Model) (Model, error) {
	if m.LoRA() == nil {
		return nil, fmt.Errorf("the model has no adapter attached")
	}
	return loraModel{m}, nil
}

// parseTargets splits --lora-targets.
func parseTargets(s string) []string {
	var out []string
	for _, t := range strings.Split(s, ",") {
		if t = strings.TrimSpace(t); t != "" {
			out = append(out, t)
		}
	}
	return out
}

// sortedTargets orders target names as llama.LoRATargets does (an
// adapter read back lists them so).
func sortedTargets(ts []string) []string {
	out := slices.Clone(ts)
	slices.SortFunc(out, func(a, b string) int {
		return slices.Index(llama.LoRATargets, a) - slices.Index(llama.LoRATargets, b)
	})
	return out
}

// EvalState records the held-out set of a run in its checkpoints.
type EvalState struct {
	Fraction float64 `json:"fraction,omitempty"` // --eval-fraction (split of the training stream)
	Data     string  `json:"data,omitempty"`     // --eval-data
	Every    int     `json:"every"`              // --eval-every
	HeldOut  int     `json:"held_out"`           // examples held out
	SHA256   string  `json:"indices_sha256,omitempty"`
}

// SplitEval holds out ceil(fraction × examples) examples of d, chosen by a
// PCG permutation seeded with seed, and returns the rest (stream order) and
// the held-out set. The training part keeps d's Hash (the stream is the
// same; the split follows from fraction and seed); both keep at least one
// example with a target.
func SplitEval(d *Dataset, fraction float64, seed int64) (train, eval *Dataset, st *EvalState, err error) {
	n := len(d.Examples)
	k := int(math.Ceil(fraction * float64(n)))
	if k < 1 || k >= n {
		return nil, nil, nil, fmt.Errorf("--eval-fraction %v of %d examples holds out %d: need at least one held-out and one training example", fraction, n, k)
	}
	r := rand.New(rand.NewPCG(uint64(seed), 0x5eed0e7a1))
	perm := r.Perm(n)
	held := perm[:k]
	slices.Sort(held)
	isHeld := make([]bool, n)
	h := sha256.New()
	var buf [8]byte
	for _, i := range held {
		isHeld[i] = true
		binary.LittleEndian.PutUint64(buf[:], uint64(i))
		h.Write(buf[:])
	}
	train = &Dataset{Name: d.Name, Header: d.Header, Hash: d.Hash}
	eval = &Dataset{Name: d.Name + " (held out)", Header: d.Header, Hash: d.Hash}
	for i, ex := range d.Examples {
		dst := train
		if isHeld[i] {
			dst = eval
		}
		dst.Examples = append(dst.Examples, ex)
		dst.Tokens += len(ex.IDs)
		dst.Targets += countTargets(ex)
	}
	if train.Targets == 0 || eval.Targets == 0 {
		return nil, nil, nil, fmt.Errorf("--eval-fraction %v: the training or the held-out part has no target token", fraction)
	}
	st = &EvalState{Fraction: fraction, HeldOut: k, SHA256: hex.EncodeToString(h.Sum(nil))}
	return train, eval, st, nil
}

func countTargets(ex tokstream.Example) int {
	n := 0
	for i, m := range ex.Mask {
		if m && i > 0 {
			n++
		}
	}
	return n
}
