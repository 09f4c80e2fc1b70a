/* edgecc int8 kernels for Cortex-M: TFLite / CMSIS-NN arithmetic, written for edgecc.
 *
 * Activations are int8 NHWC with a per-tensor zero point; weights are int8, symmetric per output channel;
 * biases int32 at scale s_in * s_w; every kernel accumulates in int32 and requantizes with a Q31 fixed-point
 * multiplier and a shift (gemmlowp SaturatingRoundingDoublingHighMul + RoundingDivideByPOT), then clamps to the
 * fused activation range. No float in any kernel except the quantize / dequantize at the model's edges.
 * On cores with the DSP extension (M4, M7) the dot products use SMLAD: two 16x16 MACs per instruction; on cores
 * with integer Helium (M55) the kernels of int8_mve.h, VMLADAVA: sixteen 8x8 MACs per instruction.
 */
#ifndef EDGECC_INT8_H_
#define EDGECC_INT8_H_

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Fixed-point requantization (exposed for tests): round(acc * multiplier * 2^(shift - 31)). */
int32_t edgecc_q8_requantize(int32_t acc, int32_t multiplier, int32_t shift);

/* float NCHW (c x h x w) -> int8 NHWC: x / scale rounded half away from zero, + zero point, saturated. */
void edgecc_q8_quantize(const float* x, int8_t* y, int c, int h, int w, float scale, int32_t zp);
/* int8 NHWC -> float NCHW: (q - zero point) * scale. */
void edgecc_q8_dequantize(const int8_t* x, float* y, int c, int h, int w, float scale, int32_t zp);

/* Convolution (and dense: h = w = kh = kw = 1). Weights: rows of kdim = kh*kw*ic in (ky, kx, ic) order, zero-padded
 * to kdim4 = kdim rounded up to 4, stored with channel pairs interleaved per group of four k (channel 2i's word,
 * channel 2i+1's word, ...; an odd last channel plain; edgecc.compiler.micro.int8.conv_weight_layout).
 * scratch: 2 * kdim4 int16 (the im2col of two output pixels), word aligned. */
typedef struct {
  int16_t ih, iw, ic, oh, ow, oc, kh, kw, sh, sw, ph, pw;
  int32_t zp_in, zp_out, act_min;
} edgecc_q8_conv_params;
void edgecc_q8_conv(const edgecc_q8_conv_params* p, const int8_t* in, const int8_t* weights, const int32_t* bias,
                    const int32_t* multiplier, const int8_t* shift, int8_t* out, int16_t* scratch);

/* Depthwise convolution (channel multiplier 1). Weights [kh][kw][c]. scratch: c int32. */
void edgecc_q8_depthwise_conv(const edgecc_q8_conv_params* p, const int8_t* in, const int8_t* weights,
                              const int32_t* bias, const int32_t* multiplier, const int8_t* shift, int8_t* out,
                              int32_t* scratch);

/* Elementwise add with rescaling (TFLite ADD: inputs scaled up by 2^20, then multiplier/shift each). */
typedef struct {
  int32_t zp_a, zp_b, zp_out, act_min;
  int32_t mult_a, shift_a, mult_b, shift_b, mult_out, shift_out;
} edgecc_q8_add_params;
void edgecc_q8_add(const edgecc_q8_add_params* p, const int8_t* a, const int8_t* b, int8_t* out, int n); /* out may be a or b */

/* A conv with a residual add fused into its epilogue: out = add(conv(in), residual), the conv's int8 value (its own
 * zero point and act_min, params p) taken as operand a of `add` (zp_a, mult_a, shift_a) and the residual as b; the
 * conv's output tensor never exists. out may be residual itself (each residual element is read just before the
 * output element at its index is written), never in. Bit-exact with edgecc_q8_conv then edgecc_q8_add.
 * scratch: edgecc_q8_conv's, then 2 * oc bytes (a pixel pair's conv values). */
void edgecc_q8_conv_add(const edgecc_q8_conv_params* p, const int8_t* in, const int8_t* weights, const int32_t* bias,
                        const int32_t* multiplier, const int8_t* shift, const edgecc_q8_add_params* add,
                        const int8_t* residual, int8_t* out, int16_t* scratch);

/* Max pooling (same quantization in and out); p->ic = channels, padding never wins. */
void edgecc_q8_maxpool(const edgecc_q8_conv_params* p, const int8_t* in, int8_t* out);
/* Global average pooling (same quantization in and out): rounded integer mean per channel. */
void edgecc_q8_global_avgpool(const int8_t* in, int8_t* out, int h, int w, int c);

#ifdef __cplusplus
}
#endif
#endif /* EDGECC_INT8_H_ */
