package llama

import (
	"github.com/alpaca-go/alpaca/pkg/backend/cpu"
)

// W is the CPU slice behind p's weights (a live view: writes go to the
// model).
func W(p *Param) []float32 { return cpu.F32(p.w) }

// G is the CPU slice behind p's gradient (nil before gradients exist).
func G(p *Param) []float32 {
	if p.g.IsNil() {
		return nil
	}
	return cpu.F32(p.g)
}
