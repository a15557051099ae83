#include "textflag.h"

// The kernels run the bit-parallel LCS (Hyyrö) of pool texts' byte
// sequences against several texts at once, one 64-bit lane per text. They
// take count pool texts docs[0..count-1] whose sequences (seq[off[d]:], all
// of length L) have the same length, so the token loop's trip count repeats
// and its branch is predicted. mf[c] holds the match masks of code c for the
// eight lanes, hi the bits above each text's length; the LCS of lane r with
// pool text d, 64 - popcount(v_r | hi_r), is stored in out[8d+r].

// func scanClass512(seq *uint8, off *uint32, docs *int32, count, L int, mf, hi unsafe.Pointer, out *uint8)
// Eight lanes in a ZMM register (AVX-512F + VPOPCNTDQ), two pool texts
// interleaved.
TEXT ·scanClass512(SB), NOSPLIT, $0-64
	MOVQ seq+0(FP), SI
	MOVQ off+8(FP), DX
	MOVQ docs+16(FP), R8
	MOVQ count+24(FP), CX
	MOVQ L+32(FP), R9
	MOVQ mf+40(FP), BX
	MOVQ hi+48(FP), AX
	MOVQ out+56(FP), DI
	VMOVDQU64 (AX), Z5
	VPTERNLOGQ $0xff, Z6, Z6, Z6
	MOVQ $64, AX
	VPBROADCASTQ AX, Z7
	CMPQ CX, $2
	JLT single512

pair512:
	MOVLQSX (R8), R10
	MOVLQZX (DX)(R10*4), R11
	ADDQ SI, R11
	MOVLQSX 4(R8), R10
	MOVLQZX (DX)(R10*4), R12
	ADDQ SI, R12
	VMOVDQA64 Z6, Z0
	VMOVDQA64 Z6, Z8
	MOVQ R9, R13
	TESTQ R13, R13
	JZ pairdone512

pairtok512:
	MOVBQZX (R11), AX
	SHLQ $6, AX
	MOVBQZX (R12), R14
	SHLQ $6, R14
	VPANDQ (BX)(AX*1), Z0, Z1
	VPANDQ (BX)(R14*1), Z8, Z9
	VPADDQ Z1, Z0, Z2
	VPSUBQ Z1, Z0, Z3
	VPADDQ Z9, Z8, Z10
	VPSUBQ Z9, Z8, Z11
	VPORQ Z3, Z2, Z0
	VPORQ Z11, Z10, Z8
	INCQ R11
	INCQ R12
	DECQ R13
	JNZ pairtok512

pairdone512:
	VPORQ Z5, Z0, Z0
	VPORQ Z5, Z8, Z8
	VPOPCNTQ Z0, Z0
	VPOPCNTQ Z8, Z8
	VPSUBQ Z0, Z7, Z0
	VPSUBQ Z8, Z7, Z8
	MOVLQSX (R8), R10
	VPMOVQB Z0, (DI)(R10*8)
	MOVLQSX 4(R8), R10
	VPMOVQB Z8, (DI)(R10*8)
	ADDQ $8, R8
	SUBQ $2, CX
	CMPQ CX, $2
	JGE pair512

single512:
	TESTQ CX, CX
	JZ done512
	MOVLQSX (R8), R10
	MOVLQZX (DX)(R10*4), R11
	ADDQ SI, R11
	VMOVDQA64 Z6, Z0
	MOVQ R9, R13
	TESTQ R13, R13
	JZ singledone512

singletok512:
	MOVBQZX (R11), AX
	SHLQ $6, AX
	VPANDQ (BX)(AX*1), Z0, Z1
	VPADDQ Z1, Z0, Z2
	VPSUBQ Z1, Z0, Z3
	VPORQ Z3, Z2, Z0
	INCQ R11
	DECQ R13
	JNZ singletok512

singledone512:
	VPORQ Z5, Z0, Z0
	VPOPCNTQ Z0, Z0
	VPSUBQ Z0, Z7, Z0
	VPMOVQB Z0, (DI)(R10*8)

done512:
	VZEROUPPER
	RET

// func scanClassAVX2(seq *uint8, off *uint32, docs *int32, count, L int, mf, hi unsafe.Pointer, out *uint8)
// Four lanes in a YMM register: lanes 0-3 of mf, hi and out (pass pointers
// advanced by four lanes for lanes 4-7).
TEXT ·scanClassAVX2(SB), NOSPLIT, $0-64
	MOVQ seq+0(FP), SI
	MOVQ off+8(FP), DX
	MOVQ docs+16(FP), R8
	MOVQ count+24(FP), CX
	MOVQ L+32(FP), R9
	MOVQ mf+40(FP), BX
	MOVQ hi+48(FP), AX
	MOVQ out+56(FP), DI
	VMOVDQU (AX), Y5
	VPCMPEQQ Y6, Y6, Y6
	TESTQ CX, CX
	JZ done

doc:
	MOVLQSX (R8), R10
	MOVLQZX (DX)(R10*4), R11
	ADDQ SI, R11
	VMOVDQA Y6, Y0
	MOVQ R9, R13
	TESTQ R13, R13
	JZ tokdone

tok:
	MOVBQZX (R11), AX
	SHLQ $6, AX
	VPAND (BX)(AX*1), Y0, Y1
	VPADDQ Y1, Y0, Y2
	VPSUBQ Y1, Y0, Y3
	VPOR Y3, Y2, Y0
	INCQ R11
	DECQ R13
	JNZ tok

tokdone:
	VPOR Y5, Y0, Y0
	VEXTRACTI128 $1, Y0, X1
	VMOVQ X0, AX
	VPEXTRQ $1, X0, R11
	VMOVQ X1, R12
	VPEXTRQ $1, X1, R13
	POPCNTQ AX, AX
	POPCNTQ R11, R11
	POPCNTQ R12, R12
	POPCNTQ R13, R13
	LEAQ (DI)(R10*8), R10
	MOVQ $64, R14
	SUBQ AX, R14
	MOVB R14, (R10)
	MOVQ $64, R14
	SUBQ R11, R14
	MOVB R14, 1(R10)
	MOVQ $64, R14
	SUBQ R12, R14
	MOVB R14, 2(R10)
	MOVQ $64, R14
	SUBQ R13, R14
	MOVB R14, 3(R10)
	ADDQ $4, R8
	DECQ CX
	JNZ doc

done:
	VZEROUPPER
	RET

// func emit512(ls *uint8, lens *int32, chunks int, fm *float64, n1 int, out *float64, kth float64) int
//
// Scores of one lane, eight pool texts per chunk: l = ls[8j] (low byte of
// each qword), m = lens[j], score = fm[m*n1 + l], stored in out[j]. Stops
// before a chunk holding a text of 128 tokens or more (fm has no row for it)
// or a score >= kth (a top-k candidate), and returns the number of chunks
// done; the caller scores that chunk itself.
TEXT ·emit512(SB), NOSPLIT, $0-64
	MOVQ ls+0(FP), SI
	MOVQ lens+8(FP), DX
	MOVQ chunks+16(FP), CX
	MOVQ fm+24(FP), BX
	MOVQ n1+32(FP), AX
	MOVQ out+40(FP), DI
	VPBROADCASTQ AX, Z4
	VBROADCASTSD kth+48(FP), Z5
	MOVQ $0xff, AX
	VPBROADCASTQ AX, Z6
	MOVQ $127, AX
	VPBROADCASTQ AX, Z7
	XORQ R8, R8

chunk:
	CMPQ R8, CX
	JGE end
	VMOVDQU64 (SI), Z0
	VPANDQ Z6, Z0, Z0
	VPMOVZXDQ (DX), Z1
	VPCMPUQ $6, Z7, Z1, K1
	KORTESTB K1, K1
	JNZ end
	VPMULUDQ Z4, Z1, Z1
	VPADDQ Z0, Z1, Z1
	KXNORB K2, K2, K2
	VGATHERQPD (BX)(Z1*8), K2, Z2
	VCMPPD $0x1d, Z5, Z2, K3
	KORTESTB K3, K3
	JNZ end
	VMOVUPD Z2, (DI)
	ADDQ $64, SI
	ADDQ $32, DX
	ADDQ $64, DI
	INCQ R8
	JMP chunk

end:
	MOVQ R8, ret+56(FP)
	VZEROUPPER
	RET

// func sum8x512(a *float64, n int, acc *[8]float64)
//
// The eight interleaved accumulators of NumPy's pairwise-sum leaf: acc[k] =
// a[k] + a[8+k] + a[16+k] + ... over the first n elements (n a multiple of
// 8, n >= 8), added left to right as NumPy does.
TEXT ·sum8x512(SB), NOSPLIT, $0-24
	MOVQ a+0(FP), SI
	MOVQ n+8(FP), CX
	MOVQ acc+16(FP), DI
	VMOVUPD (SI), Z0
	ADDQ $64, SI
	SUBQ $8, CX
	JZ sumdone

sumloop:
	VADDPD (SI), Z0, Z0
	ADDQ $64, SI
	SUBQ $8, CX
	JNZ sumloop

sumdone:
	VMOVUPD Z0, (DI)
	VZEROUPPER
	RET
