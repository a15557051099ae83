package train

import (
	"fmt"
	"path/filepath"

	"github.com/alpaca-go/alpaca/pkg/backend"
	"github.com/alpaca-go/alpaca/pkg/llama"
)

// MemPlan is what a training run keeps on its device, in bytes: fp32
// weights, gradients and AdamW moments (one arena each, 16 bytes per
// parameter in all), the activations of one micro-batch as pkg/llama
// allocates them, and the logits of its target positions (at most every
// position).
type MemPlan struct {
	Params                                 int64
	Weights, Grads, Optimizer, Activations int64
	Logits, Reserve, Total                 int64
	Rows, SeqLen                           int
}

// reserveBytes covers the CUDA context, cuBLAS's workspace and the
// backend's scratch (attention and cross-entropy row buffers).
const reserveBytes = 1 << 30

// PlanMemory computes the plan for model config c and micro-batches of
// rows × seqLen positions.
func PlanMemory(c llama.Config, rows, seqLen int) MemPlan {
	D, I, L, V := int64(c.HiddenSize), int64(c.IntermediateSize), int64(c.NumHiddenLayers), int64(c.VocabSize)
	NH := int64(c.NumAttentionHeads)
	Dkv := int64(c.NumKeyValueHeads) * int64(c.HeadDim())
	P := V*D + L*(2*D*D+2*D*Dkv+3*D*I+2*D) + D
	if !c.TieWordEmbeddings {
		P += V * D
	}
	N := int64(rows) * int64(seqLen)
	// per position, in float32s: see allocActs in pkg/llama/step.go
	perPos := (L+1)*D + L*(5*D+2*Dkv+NH+3*I+2) + 1 + D + 3*D + 2*Dkv + 3*I + 4
	p := MemPlan{
		Params: P, Weights: 4 * P, Grads: 4 * P, Optimizer: 8 * P,
		Activations: 4 * N * perPos, Logits: 4 * N * (V + D), Reserve: reserveBytes,
		Rows: rows, SeqLen: seqLen,
	}
	p.Total = p.Weights + p.Grads + p.Optimizer + p.Activations + p.Logits + p.Reserve
	return p
}

func gib(b int64) string { return fmt.Sprintf("%.2f GiB", float64(b)/(1<<30)) }

func (p MemPlan) String() string {
	return fmt.Sprintf("%.1fM params: weights %s, grads %s, optimizer (AdamW m, v) %s, activations %s (micro-batch %d×%d), logits %s, CUDA context/scratch %s; total %s",
		float64(p.Params)/1e6, gib(p.Weights), gib(p.Grads), gib(p.Optimizer), gib(p.Activations), p.Rows, p.SeqLen, gib(p.Logits), gib(p.Reserve), gib(p.Total))
}

// memInfoer is implemented by device backends that know their free memory
// (pkg/backend/cuda).
type memInfoer interface {
	MemInfo() (free, total uint64, err error)
}

// checkDeviceMemory prints the memory plan for a device backend and fails,
// before anything is allocated, when it will not fit. Backends without
// MemInfo (the CPU) are not checked.
func checkDeviceMemory(be backend.Backend, modelDir string, rows, seqLen int, logf func(string, ...any)) error {
	mi, ok := be.(memInfoer)
	if !ok {
		return nil
	}
	c, err := llama.LoadConfig(filepath.Join(modelDir, "config.json"))
	if err != nil {
		return err
	}
	p := PlanMemory(c, rows, seqLen)
	free, total, err := mi.MemInfo()
	if err != nil {
		return err
	}
	logf("memory plan on %s: %s; the device has %s free of %s", be.Name(), p, gib(int64(free)), gib(int64(total)))
	if p.Total > int64(free) {
		return fmt.Errorf("%s: the run needs about %s of device memory but %s is free (%s); lower --micro-batch or --seq-len, or train a smaller model",
			be.Name(), gib(p.Total), gib(int64(free)), p)
	}
	return nil
}
