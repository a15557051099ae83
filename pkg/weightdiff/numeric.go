package weightdiff

import (
	"encoding/binary"
	"math"
	"sort"
	"strconv"
	"strings"
	"unsafe"

	"github.com/alpaca-go/alpaca/pkg/safetensors"
	"github.com/x448/float16"
)

var littleEndian = func() bool { x := uint16(1); return *(*byte)(unsafe.Pointer(&x)) == 1 }()

// decodeInto converts little-endian float data of dtype dt into dst
// (len(dst) elements).
func decodeInto(dst []float32, dt safetensors.DType, b []byte) {
	switch dt {
	case safetensors.F32:
		if littleEndian {
			copy(dst, unsafe.Slice((*float32)(unsafe.Pointer(unsafe.SliceData(b))), len(dst)))
			return
		}
		for i := range dst {
			dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		}
	case safetensors.BF16:
		for i := range dst {
			dst[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(b[2*i:])) << 16)
		}
	case safetensors.F16:
		for i := range dst {
			dst[i] = float16.Frombits(binary.LittleEndian.Uint16(b[2*i:])).Float32()
		}
	case safetensors.F64:
		for i := range dst {
			dst[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(b[8*i:])))
		}
	}
}

// encodeInto writes v as dtype dt into dst (len(v)*size bytes).
func encodeInto(dst []byte, dt safetensors.DType, v []float32) {
	switch dt {
	case safetensors.F32:
		if littleEndian {
			copy(dst, unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(v))), 4*len(v)))
			return
		}
		for i, x := range v {
			binary.LittleEndian.PutUint32(dst[4*i:], math.Float32bits(x))
		}
	case safetensors.BF16:
		for i, x := range v {
			binary.LittleEndian.PutUint16(dst[2*i:], safetensors.Float32ToBF16(x))
		}
	case safetensors.F16:
		for i, x := range v {
			binary.LittleEndian.PutUint16(dst[2*i:], float16.Fromfloat32(x).Bits())
		}
	case safetensors.F64:
		for i, x := range v {
			binary.LittleEndian.PutUint64(dst[8*i:], math.Float64bits(float64(x)))
		}
	}
}

// firstNonFinite returns the index of the first NaN or Inf, or -1.
func firstNonFinite(v []float32) int {
	for i, x := range v {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return i
		}
	}
	return -1
}

func sum64(v []float32) float64 {
	var s0, s1, s2, s3 float64
	i := 0
	for ; i+4 <= len(v); i += 4 {
		s0 += float64(v[i])
		s1 += float64(v[i+1])
		s2 += float64(v[i+2])
		s3 += float64(v[i+3])
	}
	for ; i < len(v); i++ {
		s0 += float64(v[i])
	}
	return (s0 + s1) + (s2 + s3)
}

// torchSum mimics the original's check value: Python's sum over the state
// dict, in module order, of each tensor's float32 sum (taken here as the
// float64 sum rounded to float32), accumulated in float32.
func torchSum(names []string, sums map[string]float64) float64 {
	ordered := append([]string(nil), names...)
	sort.SliceStable(ordered, func(i, j int) bool { return moduleLess(ordered[i], ordered[j]) })
	var acc float32
	for _, n := range ordered {
		if s, ok := sums[n]; ok {
			acc += float32(s)
		}
	}
	return float64(acc)
}

// moduleLess orders Hugging Face LLaMA parameter names the way
// model.state_dict() lists them: embeddings, layers in number order (each in
// module order), final norm, lm_head; other names after, alphabetically.
func moduleLess(a, b string) bool {
	ka, kb := moduleKey(a), moduleKey(b)
	for i := range ka {
		if ka[i] != kb[i] {
			return ka[i] < kb[i]
		}
	}
	return a < b
}

var layerOrder = []string{
	"self_attn.q_proj.", "self_attn.k_proj.", "self_attn.v_proj.", "self_attn.o_proj.",
	"self_attn.rotary_emb.", "mlp.gate_proj.", "mlp.up_proj.", "mlp.down_proj.",
	"input_layernorm.", "post_attention_layernorm.",
}

func moduleKey(n string) [3]int {
	switch {
	case strings.HasSuffix(n, "embed_tokens.weight"):
		return [3]int{0, 0, 0}
	case strings.HasSuffix(n, "model.norm.weight") || n == "norm.weight":
		return [3]int{2, 0, 0}
	case strings.HasPrefix(n, "lm_head."):
		return [3]int{3, 0, 0}
	}
	if i := strings.Index(n, "layers."); i >= 0 {
		rest := n[i+len("layers."):]
		if j := strings.IndexByte(rest, '.'); j > 0 {
			if num, err := strconv.Atoi(rest[:j]); err == nil {
				sub := len(layerOrder)
				for k, p := range layerOrder {
					if strings.HasPrefix(rest[j+1:], p) {
						sub = k
						break
					}
				}
				return [3]int{1, num, sub}
			}
		}
	}
	return [3]int{4, 0, 0}
}

// asF32 views little-endian float32 bytes as []float32 (little-endian hosts
// only; amd64 and arm64 allow the unaligned loads a mixed-dtype file may need).
func asF32(b []byte) []float32 {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Slice((*float32)(unsafe.Pointer(unsafe.SliceData(b))), len(b)/4)
}
