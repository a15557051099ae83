//go:build cgo && linux

package cuda

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "csrc/alpaca_cuda.h"

// The library's functions are reached only through these pointers (dlsym):
// nothing of CUDA is needed to build or link the Go program. The header's
// prototypes give each pointer its type (__typeof__ makes no reference).
#define NSYM 32
static const char *sym_names[NSYM] = {
	"ac_api_version", "ac_last_error", "ac_init", "ac_shutdown", "ac_device_info", "ac_mem_info",
	"ac_alloc", "ac_free", "ac_upload", "ac_download", "ac_sync", "ac_zero", "ac_copy", "ac_add",
	"ac_scale", "ac_sum_squares", "ac_adamw", "ac_embedding", "ac_embedding_backward",
	"ac_gather_rows", "ac_scatter_rows", "ac_matmul", "ac_rmsnorm", "ac_rmsnorm_backward", "ac_rope",
	"ac_attention", "ac_attention_backward", "ac_attention_cached", "ac_swiglu", "ac_swiglu_backward",
	"ac_cross_entropy", "ac_mul",
};
static void *syms[NSYM];
static void *handle;

#define FN(i, name) ((__typeof__(&name))syms[i])

static int acg_load(const char *path, char *err, int n) {
	void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		const char *e = dlerror();
		strncpy(err, e ? e : "dlopen failed", n - 1);
		err[n - 1] = 0;
		return 1;
	}
	for (int i = 0; i < NSYM; i++) {
		syms[i] = dlsym(h, sym_names[i]);
		if (!syms[i]) {
			snprintf(err, n, "%s: missing symbol %s (library too old or not libalpaca_cuda)", path, sym_names[i]);
			dlclose(h);
			return 1;
		}
	}
	handle = h;
	return 0;
}

static int acg_api_version(void) { return FN(0, ac_api_version)(); }
static const char *acg_last_error(void) { return FN(1, ac_last_error)(); }
static int acg_init(int dev, int flags) { return FN(2, ac_init)(dev, flags); }
static int acg_shutdown(void) { return FN(3, ac_shutdown)(); }
static int acg_device_info(char *name, int n, int *ma, int *mi) { return FN(4, ac_device_info)(name, n, ma, mi); }
static int acg_mem_info(uint64_t *f, uint64_t *t) { return FN(5, ac_mem_info)(f, t); }
static int acg_alloc(uint64_t *p, uint64_t b) { return FN(6, ac_alloc)(p, b); }
static int acg_free(uint64_t p) { return FN(7, ac_free)(p); }
static int acg_upload(uint64_t d, const void *s, uint64_t b) { return FN(8, ac_upload)(d, s, b); }
static int acg_download(void *d, uint64_t s, uint64_t b) { return FN(9, ac_download)(d, s, b); }
static int acg_sync(void) { return FN(10, ac_sync)(); }
static int acg_zero(uint64_t x, uint64_t b) { return FN(11, ac_zero)(x, b); }
static int acg_copy(uint64_t d, uint64_t s, int64_t n) { return FN(12, ac_copy)(d, s, n); }
static int acg_add(uint64_t d, uint64_t s, int64_t n) { return FN(13, ac_add)(d, s, n); }
static int acg_scale(uint64_t x, int64_t n, float s) { return FN(14, ac_scale)(x, n, s); }
static int acg_mul(uint64_t d, uint64_t a, uint64_t b, int64_t n) { return FN(31, ac_mul)(d, a, b, n); }
static int acg_sum_squares(uint64_t x, const int64_t *o, const int64_t *l, int ns, double *out) {
	return FN(15, ac_sum_squares)(x, o, l, ns, out);
}
static int acg_adamw(uint64_t w, uint64_t g, uint64_t m, uint64_t v, const int64_t *o, const int64_t *l,
	const int32_t *dec, int ns, const float *c, int use_decay) {
	return FN(16, ac_adamw)(w, g, m, v, o, l, dec, ns, c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], use_decay);
}
static int acg_embedding(uint64_t o, uint64_t t, int dt, uint64_t tk, int64_t n, int64_t d) {
	return FN(17, ac_embedding)(o, t, dt, tk, n, d);
}
static int acg_embedding_backward(uint64_t dt, uint64_t d, uint64_t tk, int64_t n, int64_t dim) {
	return FN(18, ac_embedding_backward)(dt, d, tk, n, dim);
}
static int acg_gather_rows(uint64_t d, uint64_t s, uint64_t r, int64_t n, int64_t dim) {
	return FN(19, ac_gather_rows)(d, s, r, n, dim);
}
static int acg_scatter_rows(uint64_t d, uint64_t s, uint64_t r, int64_t n, int64_t dim) {
	return FN(20, ac_scatter_rows)(d, s, r, n, dim);
}
static int acg_matmul(int ta, int tb, int64_t m, int64_t n, int64_t k, float alpha, uint64_t a, int64_t lda,
	uint64_t b, int bdt, int64_t ldb, float beta, uint64_t c, int64_t ldc) {
	return FN(21, ac_matmul)(ta, tb, m, n, k, alpha, a, lda, b, bdt, ldb, beta, c, ldc);
}
static int acg_rmsnorm(uint64_t y, uint64_t r, uint64_t x, uint64_t w, int64_t rows, int64_t dim, float eps) {
	return FN(22, ac_rmsnorm)(y, r, x, w, rows, dim, eps);
}
static int acg_rmsnorm_backward(uint64_t dx, uint64_t dw, uint64_t dy, uint64_t x, uint64_t w, uint64_t r,
	int64_t rows, int64_t dim) {
	return FN(23, ac_rmsnorm_backward)(dx, dw, dy, x, w, r, rows, dim);
}
static int acg_rope(uint64_t x, uint64_t p, int64_t rows, int64_t h, int64_t hd, uint64_t c, uint64_t s, int inv) {
	return FN(24, ac_rope)(x, p, rows, h, hd, c, s, inv);
}
static int acg_attention(uint64_t o, uint64_t l, uint64_t q, uint64_t k, uint64_t v, uint64_t s, const int64_t *sh) {
	return FN(25, ac_attention)(o, l, q, k, v, s, sh[0], sh[1], sh[2], sh[3], sh[4]);
}
static int acg_attention_backward(uint64_t dq, uint64_t dk, uint64_t dv, uint64_t dout, uint64_t o, uint64_t l,
	uint64_t q, uint64_t k, uint64_t v, uint64_t s, const int64_t *sh) {
	return FN(26, ac_attention_backward)(dq, dk, dv, dout, o, l, q, k, v, s, sh[0], sh[1], sh[2], sh[3], sh[4]);
}
static int acg_attention_cached(uint64_t o, uint64_t q, uint64_t k, uint64_t v, const int64_t *sh) {
	return FN(27, ac_attention_cached)(o, q, k, v, sh[0], sh[1], sh[2], sh[3], sh[4]);
}
static int acg_swiglu(uint64_t y, uint64_t g, uint64_t u, int64_t n) { return FN(28, ac_swiglu)(y, g, u, n); }
static int acg_swiglu_backward(uint64_t dg, uint64_t du, uint64_t dy, uint64_t g, uint64_t u, int64_t n) {
	return FN(29, ac_swiglu_backward)(dg, du, dy, g, u, n);
}
static int acg_cross_entropy(uint64_t d, uint64_t l, uint64_t t, int64_t rows, int64_t vocab, float scale,
	double *loss, int64_t *cnt) {
	return FN(30, ac_cross_entropy)(d, l, t, rows, vocab, scale, loss, cnt);
}
*/
import "C"

import (
	"fmt"
	"unsafe"
)

// cgoLoaderAvailable: this build can dlopen the library.
const cgoLoaderAvailable = true

// dl is the dlopen'ed libalpaca_cuda.so. Only one can be loaded per
// process (the library keeps one device context).
type dl struct{}

func loadLib(path string) (api, error) {
	cp := C.CString(path)
	defer C.free(unsafe.Pointer(cp))
	var buf [512]C.char
	if C.acg_load(cp, &buf[0], C.int(len(buf))) != 0 {
		return nil, fmt.Errorf("%s", C.GoString(&buf[0]))
	}
	if v := int(C.acg_api_version()); v != apiVersion {
		return nil, fmt.Errorf("%s has C API version %d, this program needs %d: rebuild it with make cuda", path, v, apiVersion)
	}
	return dl{}, nil
}

func u64(p uint64) C.uint64_t { return C.uint64_t(p) }
func i64(n int64) C.int64_t   { return C.int64_t(n) }
func b2i(b bool) C.int {
	if b {
		return 1
	}
	return 0
}

func (dl) lastError() string       { return C.GoString(C.acg_last_error()) }
func (dl) init(dev, flags int) int { return int(C.acg_init(C.int(dev), C.int(flags))) }
func (dl) shutdown() int           { return int(C.acg_shutdown()) }
func (dl) deviceInfo() (string, int, int, int) {
	var buf [256]C.char
	var ma, mi C.int
	rc := int(C.acg_device_info(&buf[0], C.int(len(buf)), &ma, &mi))
	return C.GoString(&buf[0]), int(ma), int(mi), rc
}
func (dl) memInfo() (uint64, uint64, int) {
	var f, t C.uint64_t
	rc := int(C.acg_mem_info(&f, &t))
	return uint64(f), uint64(t), rc
}
func (dl) alloc(bytes uint64) (uint64, int) {
	var p C.uint64_t
	rc := int(C.acg_alloc(&p, C.uint64_t(bytes)))
	return uint64(p), rc
}
func (dl) free(p uint64) int { return int(C.acg_free(u64(p))) }
func (dl) upload(dst uint64, src unsafe.Pointer, bytes uint64) int {
	return int(C.acg_upload(u64(dst), src, C.uint64_t(bytes)))
}
func (dl) download(dst unsafe.Pointer, src uint64, bytes uint64) int {
	return int(C.acg_download(dst, u64(src), C.uint64_t(bytes)))
}
func (dl) sync() int                     { return int(C.acg_sync()) }
func (dl) zero(x, bytes uint64) int      { return int(C.acg_zero(u64(x), C.uint64_t(bytes))) }
func (dl) copy(d, s uint64, n int64) int { return int(C.acg_copy(u64(d), u64(s), i64(n))) }
func (dl) add(d, s uint64, n int64) int  { return int(C.acg_add(u64(d), u64(s), i64(n))) }
func (dl) mul(d, a, b uint64, n int64) int {
	return int(C.acg_mul(u64(d), u64(a), u64(b), i64(n)))
}
func (dl) scale(x uint64, n int64, s float32) int {
	return int(C.acg_scale(u64(x), i64(n), C.float(s)))
}

func (dl) sumSquares(x uint64, off, ln []int64) (float64, int) {
	var out C.double
	if len(off) == 0 {
		return 0, 0
	}
	rc := int(C.acg_sum_squares(u64(x), (*C.int64_t)(unsafe.Pointer(&off[0])), (*C.int64_t)(unsafe.Pointer(&ln[0])), C.int(len(off)), &out))
	return float64(out), rc
}

func (dl) adamw(w, g, m, v uint64, off, ln []int64, decay []int32, c [8]float32, useDecay bool) int {
	if len(off) == 0 {
		return 0
	}
	return int(C.acg_adamw(u64(w), u64(g), u64(m), u64(v), (*C.int64_t)(unsafe.Pointer(&off[0])), (*C.int64_t)(unsafe.Pointer(&ln[0])),
		(*C.int32_t)(unsafe.Pointer(&decay[0])), C.int(len(off)), (*C.float)(unsafe.Pointer(&c[0])), b2i(useDecay)))
}

func (dl) embedding(out, table uint64, dt int, tokens uint64, n, dim int64) int {
	return int(C.acg_embedding(u64(out), u64(table), C.int(dt), u64(tokens), i64(n), i64(dim)))
}
func (dl) embeddingBackward(dt, dout, tokens uint64, n, dim int64) int {
	return int(C.acg_embedding_backward(u64(dt), u64(dout), u64(tokens), i64(n), i64(dim)))
}
func (dl) gatherRows(d, s, rows uint64, n, dim int64) int {
	return int(C.acg_gather_rows(u64(d), u64(s), u64(rows), i64(n), i64(dim)))
}
func (dl) scatterRows(d, s, rows uint64, n, dim int64) int {
	return int(C.acg_scatter_rows(u64(d), u64(s), u64(rows), i64(n), i64(dim)))
}
func (dl) matmul(ta, tb bool, m, n, k int64, alpha float32, a uint64, lda int64, b uint64, bdt int, ldb int64, beta float32, c uint64, ldc int64) int {
	return int(C.acg_matmul(b2i(ta), b2i(tb), i64(m), i64(n), i64(k), C.float(alpha), u64(a), i64(lda), u64(b), C.int(bdt), i64(ldb), C.float(beta), u64(c), i64(ldc)))
}
func (dl) rmsnorm(y, rstd, x, w uint64, rows, dim int64, eps float32) int {
	return int(C.acg_rmsnorm(u64(y), u64(rstd), u64(x), u64(w), i64(rows), i64(dim), C.float(eps)))
}
func (dl) rmsnormBackward(dx, dw, dy, x, w, rstd uint64, rows, dim int64) int {
	return int(C.acg_rmsnorm_backward(u64(dx), u64(dw), u64(dy), u64(x), u64(w), u64(rstd), i64(rows), i64(dim)))
}
func (dl) rope(x, pos uint64, rows, heads, hd int64, cos, sin uint64, inverse bool) int {
	return int(C.acg_rope(u64(x), u64(pos), i64(rows), i64(heads), i64(hd), u64(cos), u64(sin), b2i(inverse)))
}
func (dl) attention(out, lse, q, k, v, seg uint64, s [5]int64) int {
	return int(C.acg_attention(u64(out), u64(lse), u64(q), u64(k), u64(v), u64(seg), (*C.int64_t)(unsafe.Pointer(&s[0]))))
}
func (dl) attentionBackward(dq, dk, dv, dout, out, lse, q, k, v, seg uint64, s [5]int64) int {
	return int(C.acg_attention_backward(u64(dq), u64(dk), u64(dv), u64(dout), u64(out), u64(lse), u64(q), u64(k), u64(v), u64(seg), (*C.int64_t)(unsafe.Pointer(&s[0]))))
}
func (dl) attentionCached(out, q, k, v uint64, s [5]int64) int {
	return int(C.acg_attention_cached(u64(out), u64(q), u64(k), u64(v), (*C.int64_t)(unsafe.Pointer(&s[0]))))
}
func (dl) swiglu(y, gate, up uint64, n int64) int {
	return int(C.acg_swiglu(u64(y), u64(gate), u64(up), i64(n)))
}
func (dl) swigluBackward(dg, du, dy, gate, up uint64, n int64) int {
	return int(C.acg_swiglu_backward(u64(dg), u64(du), u64(dy), u64(gate), u64(up), i64(n)))
}
func (dl) crossEntropy(d, l, t uint64, rows, vocab int64, scale float32) (float64, int64, int) {
	var loss C.double
	var cnt C.int64_t
	rc := int(C.acg_cross_entropy(u64(d), u64(l), u64(t), i64(rows), i64(vocab), C.float(scale), &loss, &cnt))
	return float64(loss), int64(cnt), rc
}
