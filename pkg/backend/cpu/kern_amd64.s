//go:build amd64 && !purego

#include "textflag.h"

// func kern6x16(kc int, a, b, c *float32, ldc int)
// C[6x16] += Ap·Bp where Ap is kc×6 (6 floats per k) and Bp is kc×16
// (16 floats per k), C row-major with leading dimension ldc (floats).
TEXT ·kern6x16(SB), NOSPLIT, $0-40
	MOVQ kc+0(FP), CX
	MOVQ a+8(FP), SI
	MOVQ b+16(FP), DI
	MOVQ c+24(FP), DX
	MOVQ ldc+32(FP), R8
	SHLQ $2, R8
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	VXORPS Y8, Y8, Y8
	VXORPS Y9, Y9, Y9
	VXORPS Y10, Y10, Y10
	VXORPS Y11, Y11, Y11
	VXORPS Y12, Y12, Y12
	VXORPS Y13, Y13, Y13
	VXORPS Y14, Y14, Y14
	VXORPS Y15, Y15, Y15
	TESTQ CX, CX
	JE   store

loop:
	VMOVUPS      (DI), Y0
	VMOVUPS      32(DI), Y1
	VBROADCASTSS (SI), Y2
	VBROADCASTSS 4(SI), Y3
	VFMADD231PS  Y0, Y2, Y4
	VFMADD231PS  Y1, Y2, Y5
	VFMADD231PS  Y0, Y3, Y6
	VFMADD231PS  Y1, Y3, Y7
	VBROADCASTSS 8(SI), Y2
	VBROADCASTSS 12(SI), Y3
	VFMADD231PS  Y0, Y2, Y8
	VFMADD231PS  Y1, Y2, Y9
	VFMADD231PS  Y0, Y3, Y10
	VFMADD231PS  Y1, Y3, Y11
	VBROADCASTSS 16(SI), Y2
	VBROADCASTSS 20(SI), Y3
	VFMADD231PS  Y0, Y2, Y12
	VFMADD231PS  Y1, Y2, Y13
	VFMADD231PS  Y0, Y3, Y14
	VFMADD231PS  Y1, Y3, Y15
	ADDQ $24, SI
	ADDQ $64, DI
	DECQ CX
	JNE  loop

store:
	VADDPS  (DX), Y4, Y4
	VMOVUPS Y4, (DX)
	VADDPS  32(DX), Y5, Y5
	VMOVUPS Y5, 32(DX)
	ADDQ    R8, DX
	VADDPS  (DX), Y6, Y6
	VMOVUPS Y6, (DX)
	VADDPS  32(DX), Y7, Y7
	VMOVUPS Y7, 32(DX)
	ADDQ    R8, DX
	VADDPS  (DX), Y8, Y8
	VMOVUPS Y8, (DX)
	VADDPS  32(DX), Y9, Y9
	VMOVUPS Y9, 32(DX)
	ADDQ    R8, DX
	VADDPS  (DX), Y10, Y10
	VMOVUPS Y10, (DX)
	VADDPS  32(DX), Y11, Y11
	VMOVUPS Y11, 32(DX)
	ADDQ    R8, DX
	VADDPS  (DX), Y12, Y12
	VMOVUPS Y12, (DX)
	VADDPS  32(DX), Y13, Y13
	VMOVUPS Y13, 32(DX)
	ADDQ    R8, DX
	VADDPS  (DX), Y14, Y14
	VMOVUPS Y14, (DX)
	VADDPS  32(DX), Y15, Y15
	VMOVUPS Y15, 32(DX)
	VZEROUPPER
	RET

// func expSubAVX(x *float32, n int, m float32, tab *float32)
// x[i] = exp(x[i] - m) for n (a multiple of 8) elements, 8 lanes at a time,
// with expf's range reduction and polynomial. Arguments are clamped to
// [-87.33, 88]; callers pass x <= m (softmax). tab holds 8-lane copies of
// the constants (see expTab).
TEXT ·expSubAVX(SB), NOSPLIT, $0-32
	MOVQ         x+0(FP), DI
	MOVQ         n+8(FP), CX
	VBROADCASTSS m+16(FP), Y15
	MOVQ         tab+24(FP), R9
	SHRQ         $3, CX
	JZ           expdone

exploop:
	VMOVUPS      (DI), Y0
	VSUBPS       Y15, Y0, Y0
	VMAXPS       320(R9), Y0, Y0
	VMINPS       352(R9), Y0, Y0
	VMULPS       (R9), Y0, Y1
	VROUNDPS     $0, Y1, Y1
	VFNMADD231PS 32(R9), Y1, Y0
	VFNMADD231PS 64(R9), Y1, Y0
	VMOVUPS      96(R9), Y2
	VFMADD213PS  128(R9), Y0, Y2
	VFMADD213PS  160(R9), Y0, Y2
	VFMADD213PS  192(R9), Y0, Y2
	VFMADD213PS  224(R9), Y0, Y2
	VFMADD213PS  256(R9), Y0, Y2
	VMULPS       Y0, Y0, Y3
	VFMADD213PS  Y0, Y3, Y2
	VADDPS       288(R9), Y2, Y2
	VCVTPS2DQ    Y1, Y4
	VPADDD       384(R9), Y4, Y4
	VPSLLD       $23, Y4, Y4
	VMULPS       Y4, Y2, Y2
	VMOVUPS      Y2, (DI)
	ADDQ         $32, DI
	DECQ         CX
	JNZ          exploop

expdone:
	VZEROUPPER
	RET

// SUM4 adds the four 8-lane accumulators Y0..Y3 into X0's low lane in a
// fixed order: ((Y0+Y1)+(Y2+Y3)), then the lanes pairwise.
#define SUM4 \
	VADDPS       Y1, Y0, Y0 \
	VADDPS       Y3, Y2, Y2 \
	VADDPS       Y2, Y0, Y0 \
	VEXTRACTF128 $1, Y0, X1 \
	VADDPS       X1, X0, X0 \
	VMOVHLPS     X0, X0, X1 \
	VADDPS       X1, X0, X0 \
	VMOVSHDUP    X0, X1 \
	VADDSS       X1, X0, X0

// dotAVX returns sum(a[i]*b[i]) for n (a multiple of 32) elements: four
// 8-lane FMA accumulators, combined as ((acc0+acc1)+(acc2+acc3)), then the
// 8 lanes as ((l0+l4)+(l2+l6))+((l1+l5)+(l3+l7)). The order depends only
// on n, so a half-precision row widened into a buffer gives the bits of the
// same row stored in float32.
TEXT ·dotAVX(SB), NOSPLIT, $0-28
	MOVQ   a+0(FP), SI
	MOVQ   b+8(FP), DI
	MOVQ   n+16(FP), CX
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	SHRQ   $5, CX
	JZ     dotsum

dotloop:
	VMOVUPS     (SI), Y4
	VMOVUPS     32(SI), Y5
	VMOVUPS     64(SI), Y6
	VMOVUPS     96(SI), Y7
	VFMADD231PS (DI), Y4, Y0
	VFMADD231PS 32(DI), Y5, Y1
	VFMADD231PS 64(DI), Y6, Y2
	VFMADD231PS 96(DI), Y7, Y3
	ADDQ        $128, SI
	ADDQ        $128, DI
	DECQ        CX
	JNZ         dotloop

dotsum:
	SUM4
	VMOVSS X0, ret+24(FP)
	VZEROUPPER
	RET

// dotHalfAVX is dotAVX with b given as n half-precision values, widened
// exactly in registers: bf16 (f16 == 0) by a 16-bit left shift of the
// zero-extended value, IEEE half (f16 != 0) by VCVTPH2PS. Same order of
// summation as dotAVX, so the result has the bits of dotAVX on the widened
// row.
TEXT ·dotHalfAVX(SB), NOSPLIT, $0-36
	MOVQ   a+0(FP), SI
	MOVQ   b+8(FP), DI
	MOVQ   n+16(FP), CX
	MOVQ   f16+24(FP), DX
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	SHRQ   $5, CX
	JZ     hsum
	TESTQ  DX, DX
	JNZ    hloopf16

hloopbf16:
	VPMOVZXWD   (DI), Y4
	VPMOVZXWD   16(DI), Y5
	VPMOVZXWD   32(DI), Y6
	VPMOVZXWD   48(DI), Y7
	VPSLLD      $16, Y4, Y4
	VPSLLD      $16, Y5, Y5
	VPSLLD      $16, Y6, Y6
	VPSLLD      $16, Y7, Y7
	VFMADD231PS (SI), Y4, Y0
	VFMADD231PS 32(SI), Y5, Y1
	VFMADD231PS 64(SI), Y6, Y2
	VFMADD231PS 96(SI), Y7, Y3
	ADDQ        $128, SI
	ADDQ        $64, DI
	DECQ        CX
	JNZ         hloopbf16
	JMP         hsum

hloopf16:
	VCVTPH2PS   (DI), Y4
	VCVTPH2PS   16(DI), Y5
	VCVTPH2PS   32(DI), Y6
	VCVTPH2PS   48(DI), Y7
	VFMADD231PS (SI), Y4, Y0
	VFMADD231PS 32(SI), Y5, Y1
	VFMADD231PS 64(SI), Y6, Y2
	VFMADD231PS 96(SI), Y7, Y3
	ADDQ        $128, SI
	ADDQ        $64, DI
	DECQ        CX
	JNZ         hloopf16

hsum:
	SUM4
	VMOVSS X0, ret+32(FP)
	VZEROUPPER
	RET

// SUM4Z adds the four 16-lane accumulators Z0..Z3 into X0's low lane in a
// fixed order: ((Z0+Z1)+(Z2+Z3)), the two 8-lane halves, then as SUM4.
#define SUM4Z \
	VADDPS        Z1, Z0, Z0 \
	VADDPS        Z3, Z2, Z2 \
	VADDPS        Z2, Z0, Z0 \
	VEXTRACTF64X4 $1, Z0, Y1 \
	VADDPS        Y1, Y0, Y0 \
	VEXTRACTF128  $1, Y0, X1 \
	VADDPS        X1, X0, X0 \
	VMOVHLPS      X0, X0, X1 \
	VADDPS        X1, X0, X0 \
	VMOVSHDUP     X0, X1 \
	VADDSS        X1, X0, X0

// dot512 returns sum(a[i]*b[i]) for n (a multiple of 64) elements: four
// 16-lane FMA accumulators (AVX-512F), combined by SUM4Z, so the order
// depends only on n. b, the weight row streamed from memory, is prefetched
// 4 KiB ahead (rows are usually contiguous, so this reaches into the next
// one, across the page boundary where the hardware prefetcher stops).
TEXT ·dot512(SB), NOSPLIT, $0-28
	MOVQ   a+0(FP), SI
	MOVQ   b+8(FP), DI
	MOVQ   n+16(FP), CX
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z2, Z2, Z2
	VPXORD Z3, Z3, Z3
	SHRQ   $6, CX
	JZ     d5sum

d5loop:
	PREFETCHT0  4096(DI)
	PREFETCHT0  4160(DI)
	PREFETCHT0  4224(DI)
	PREFETCHT0  4288(DI)
	VMOVUPS     (DI), Z4
	VMOVUPS     64(DI), Z5
	VMOVUPS     128(DI), Z6
	VMOVUPS     192(DI), Z7
	VFMADD231PS (SI), Z4, Z0
	VFMADD231PS 64(SI), Z5, Z1
	VFMADD231PS 128(SI), Z6, Z2
	VFMADD231PS 192(SI), Z7, Z3
	ADDQ        $256, SI
	ADDQ        $256, DI
	DECQ        CX
	JNZ         d5loop

d5sum:
	SUM4Z
	VMOVSS X0, ret+24(FP)
	VZEROUPPER
	RET

// dotHalf512 is dot512 with b given as n half-precision values widened
// exactly in registers: bf16 (f16 == 0) by zero extension and a 16-bit
// left shift (AVX-512BW), IEEE half (f16 != 0) by VCVTPH2PS. Same order of
// summation as dot512, so the bits of dot512 on the widened row.
TEXT ·dotHalf512(SB), NOSPLIT, $0-36
	MOVQ   a+0(FP), SI
	MOVQ   b+8(FP), DI
	MOVQ   n+16(FP), CX
	MOVQ   f16+24(FP), DX
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z2, Z2, Z2
	VPXORD Z3, Z3, Z3
	SHRQ   $6, CX
	JZ     h5sum
	TESTQ  DX, DX
	JNZ    h5loopf16

h5loopbf16:
	PREFETCHT0  2048(DI)
	PREFETCHT0  2112(DI)
	VPMOVZXWD   (DI), Z4
	VPMOVZXWD   32(DI), Z5
	VPMOVZXWD   64(DI), Z6
	VPMOVZXWD   96(DI), Z7
	VPSLLD      $16, Z4, Z4
	VPSLLD      $16, Z5, Z5
	VPSLLD      $16, Z6, Z6
	VPSLLD      $16, Z7, Z7
	VFMADD231PS (SI), Z4, Z0
	VFMADD231PS 64(SI), Z5, Z1
	VFMADD231PS 128(SI), Z6, Z2
	VFMADD231PS 192(SI), Z7, Z3
	ADDQ        $256, SI
	ADDQ        $128, DI
	DECQ        CX
	JNZ         h5loopbf16
	JMP         h5sum

h5loopf16:
	PREFETCHT0  2048(DI)
	PREFETCHT0  2112(DI)
	VCVTPH2PS   (DI), Z4
	VCVTPH2PS   32(DI), Z5
	VCVTPH2PS   64(DI), Z6
	VCVTPH2PS   96(DI), Z7
	VFMADD231PS (SI), Z4, Z0
	VFMADD231PS 64(SI), Z5, Z1
	VFMADD231PS 128(SI), Z6, Z2
	VFMADD231PS 192(SI), Z7, Z3
	ADDQ        $256, SI
	ADDQ        $128, DI
	DECQ        CX
	JNZ         h5loopf16

h5sum:
	SUM4Z
	VMOVSS X0, ret+32(FP)
	VZEROUPPER
	RET

// ZERO16 clears the sixteen accumulators Z0..Z15 of the four-row kernels.
#define ZERO16 \
	VPXORD Z0, Z0, Z0 \
	VPXORD Z1, Z1, Z1 \
	VPXORD Z2, Z2, Z2 \
	VPXORD Z3, Z3, Z3 \
	VPXORD Z4, Z4, Z4 \
	VPXORD Z5, Z5, Z5 \
	VPXORD Z6, Z6, Z6 \
	VPXORD Z7, Z7, Z7 \
	VPXORD Z8, Z8, Z8 \
	VPXORD Z9, Z9, Z9 \
	VPXORD Z10, Z10, Z10 \
	VPXORD Z11, Z11, Z11 \
	VPXORD Z12, Z12, Z12 \
	VPXORD Z13, Z13, Z13 \
	VPXORD Z14, Z14, Z14 \
	VPXORD Z15, Z15, Z15

// SUMROW reduces one row's four 16-lane accumulators a0..a3 in SUM4Z's
// order and stores the float32 at off(DX); a1 (ya1, xa1) is the scratch.
#define SUMROW(a0, a1, a2, a3, ya0, xa0, ya1, xa1, off) \
	VADDPS        a1, a0, a0 \
	VADDPS        a3, a2, a2 \
	VADDPS        a2, a0, a0 \
	VEXTRACTF64X4 $1, a0, ya1 \
	VADDPS        ya1, ya0, ya0 \
	VEXTRACTF128  $1, ya0, xa1 \
	VADDPS        xa1, xa0, xa0 \
	VMOVHLPS      xa0, xa0, xa1 \
	VADDPS        xa1, xa0, xa0 \
	VMOVSHDUP     xa0, xa1 \
	VADDSS        xa1, xa0, xa0 \
	VMOVSS        xa0, off(DX)

// ROWF16(p, a0, a1, a2, a3) widens 64 IEEE halves at (p) and accumulates
// them times x (Z28..Z31) into a0..a3, as one dotHalf512 iteration.
#define ROWF16(p, a0, a1, a2, a3) \
	VCVTPH2PS   (p), Z16 \
	VCVTPH2PS   32(p), Z17 \
	VCVTPH2PS   64(p), Z18 \
	VCVTPH2PS   96(p), Z19 \
	VFMADD231PS Z28, Z16, a0 \
	VFMADD231PS Z29, Z17, a1 \
	VFMADD231PS Z30, Z18, a2 \
	VFMADD231PS Z31, Z19, a3

#define ROWBF16(p, a0, a1, a2, a3) \
	VPMOVZXWD   (p), Z16 \
	VPMOVZXWD   32(p), Z17 \
	VPMOVZXWD   64(p), Z18 \
	VPMOVZXWD   96(p), Z19 \
	VPSLLD      $16, Z16, Z16 \
	VPSLLD      $16, Z17, Z17 \
	VPSLLD      $16, Z18, Z18 \
	VPSLLD      $16, Z19, Z19 \
	VFMADD231PS Z28, Z16, a0 \
	VFMADD231PS Z29, Z17, a1 \
	VFMADD231PS Z30, Z18, a2 \
	VFMADD231PS Z31, Z19, a3

// X4ITER(ROW) is one iteration of dotHalf512x4's loop: x into Z28..Z31,
// the next four rows prefetched, ROW (ROWF16 or ROWBF16) for the four rows,
// pointers advanced and CX decremented (flags set for the loop's JNZ).
#define X4ITER(ROW) \
	VMOVUPS    (SI), Z28 \
	VMOVUPS    64(SI), Z29 \
	VMOVUPS    128(SI), Z30 \
	VMOVUPS    192(SI), Z31 \
	PREFETCHT0 (DI)(R12*1) \
	PREFETCHT0 64(DI)(R12*1) \
	PREFETCHT0 (R9)(R12*1) \
	PREFETCHT0 64(R9)(R12*1) \
	PREFETCHT0 (R10)(R12*1) \
	PREFETCHT0 64(R10)(R12*1) \
	PREFETCHT0 (R11)(R12*1) \
	PREFETCHT0 64(R11)(R12*1) \
	ROW(DI, Z0, Z1, Z2, Z3) \
	ROW(R9, Z4, Z5, Z6, Z7) \
	ROW(R10, Z8, Z9, Z10, Z11) \
	ROW(R11, Z12, Z13, Z14, Z15) \
	ADDQ $256, SI \
	ADDQ $128, DI \
	ADDQ $128, R9 \
	ADDQ $128, R10 \
	ADDQ $128, R11 \
	DECQ CX

// func dotHalf512x4(a *float32, b *uint16, ldb int, n int, f16 int, out *[4]float32)
//
// dotHalf512 of a with the four rows b, b+ldb, b+2ldb, b+3ldb at once
// (same order of summation per row, so the same bits): x is loaded once
// per 64 elements for the four rows, and the four rows stream together;
// the next four rows are prefetched at the same offset.
TEXT ·dotHalf512x4(SB), NOSPLIT, $0-48
	MOVQ a+0(FP), SI
	MOVQ b+8(FP), DI
	MOVQ ldb+16(FP), R8
	MOVQ n+24(FP), CX
	MOVQ f16+32(FP), BX
	MOVQ out+40(FP), DX
	SHLQ $1, R8                // row stride in bytes
	LEAQ (DI)(R8*1), R9        // row 1
	LEAQ (R9)(R8*1), R10       // row 2
	LEAQ (R10)(R8*1), R11      // row 3
	LEAQ (R8)(R8*1), R12
	SHLQ $1, R12               // 4 rows ahead, in bytes
	ZERO16
	SHRQ   $6, CX
	JZ     x4sum
	TESTQ  BX, BX
	JZ     x4bf16

x4f16:
	X4ITER(ROWF16)
	JNZ  x4f16
	JMP  x4sum

x4bf16:
	X4ITER(ROWBF16)
	JNZ  x4bf16

x4sum:
	SUMROW(Z0, Z1, Z2, Z3, Y0, X0, Y1, X1, 0)
	SUMROW(Z4, Z5, Z6, Z7, Y4, X4, Y5, X5, 4)
	SUMROW(Z8, Z9, Z10, Z11, Y8, X8, Y9, X9, 8)
	SUMROW(Z12, Z13, Z14, Z15, Y12, X12, Y13, X13, 12)
	VZEROUPPER
	RET

#define ROWF32(p, a0, a1, a2, a3) \
	VMOVUPS     (p), Z16 \
	VMOVUPS     64(p), Z17 \
	VMOVUPS     128(p), Z18 \
	VMOVUPS     192(p), Z19 \
	VFMADD231PS Z28, Z16, a0 \
	VFMADD231PS Z29, Z17, a1 \
	VFMADD231PS Z30, Z18, a2 \
	VFMADD231PS Z31, Z19, a3

#define PF4(r) \
	PREFETCHT0 (r)(R12*1) \
	PREFETCHT0 64(r)(R12*1) \
	PREFETCHT0 128(r)(R12*1) \
	PREFETCHT0 192(r)(R12*1)

// func dot512x4(a, b *float32, ldb int, n int, out *[4]float32)
//
// dot512 of a with the four rows b, b+ldb, b+2ldb, b+3ldb at once (same
// order of summation per row, so the same bits as dot512 and dotHalf512x4
// on widened rows).
TEXT ·dot512x4(SB), NOSPLIT, $0-40
	MOVQ a+0(FP), SI
	MOVQ b+8(FP), DI
	MOVQ ldb+16(FP), R8
	MOVQ n+24(FP), CX
	MOVQ out+32(FP), DX
	SHLQ $2, R8
	LEAQ (DI)(R8*1), R9
	LEAQ (R9)(R8*1), R10
	LEAQ (R10)(R8*1), R11
	LEAQ (R8)(R8*1), R12
	SHLQ $1, R12
	ZERO16
	SHRQ   $6, CX
	JZ     f4sum

f4loop:
	VMOVUPS (SI), Z28
	VMOVUPS 64(SI), Z29
	VMOVUPS 128(SI), Z30
	VMOVUPS 192(SI), Z31
	PF4(DI)
	PF4(R9)
	PF4(R10)
	PF4(R11)
	ROWF32(DI, Z0, Z1, Z2, Z3)
	ROWF32(R9, Z4, Z5, Z6, Z7)
	ROWF32(R10, Z8, Z9, Z10, Z11)
	ROWF32(R11, Z12, Z13, Z14, Z15)
	ADDQ $256, SI
	ADDQ $256, DI
	ADDQ $256, R9
	ADDQ $256, R10
	ADDQ $256, R11
	DECQ CX
	JNZ  f4loop

f4sum:
	SUMROW(Z0, Z1, Z2, Z3, Y0, X0, Y1, X1, 0)
	SUMROW(Z4, Z5, Z6, Z7, Y4, X4, Y5, X5, 4)
	SUMROW(Z8, Z9, Z10, Z11, Y8, X8, Y9, X9, 8)
	SUMROW(Z12, Z13, Z14, Z15, Y12, X12, Y13, X13, 12)
	VZEROUPPER
	RET

// func axpy512(alpha float32, x, y *float32, n int)
//
// y[i] += alpha*x[i] for n (a multiple of 16) elements, multiply then add
// (two roundings, as gonum's Saxpy: the same bits).
TEXT ·axpy512(SB), NOSPLIT, $0-32
	VBROADCASTSS alpha+0(FP), Z2
	MOVQ         x+8(FP), SI
	MOVQ         y+16(FP), DI
	MOVQ         n+24(FP), CX
	SHRQ         $4, CX
	JZ           axdone

axloop:
	VMULPS  (SI), Z2, Z0
	VADDPS  (DI), Z0, Z0
	VMOVUPS Z0, (DI)
	ADDQ    $64, SI
	ADDQ    $64, DI
	DECQ    CX
	JNZ     axloop

axdone:
	VZEROUPPER
	RET
