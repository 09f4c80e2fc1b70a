/* edgecc int8 kernels (see include/edgecc/int8.h). Bit-exact with edgecc.compiler.squeeze.quant.run_int8.
 *
 * Convolutions build one im2col row per output pixel as int16 (input - zero point; padding contributes 0), in
 * the order SMLAD wants: each group of four k = 4j..4j+3 is stored as (x0, x2, x1, x3), so that a word of four
 * int8 weights sign-extended with SXTB16 (w0, w2) and SXTB16(ROR 8) (w1, w3) multiplies two words of the row.
 */
#include "edgecc/int8.h"

#include <stdint.h>

#if defined(__ARM_FEATURE_DSP) && defined(__ARM_FEATURE_SIMD32)
#include <arm_acle.h>
#define EDGECC_Q8_DSP 1
#else
#define EDGECC_Q8_DSP 0
#endif

#if EDGECC_Q8_DSP
/* rotate right by 8 (gcc folds it into SXTB16's ROR operand) */
static inline int32_t ror8(int32_t x) { return (int32_t)(((uint32_t)x >> 8) | ((uint32_t)x << 24)); }
#endif

static inline int32_t clamp_i8(int32_t v, int32_t lo) {
  return v < lo ? lo : (v > 127 ? 127 : v);
}

int32_t edgecc_q8_requantize(int32_t acc, int32_t multiplier, int32_t shift) {
  int32_t left = shift > 0 ? shift : 0;
  int32_t right = shift > 0 ? 0 : -shift;
  int32_t x = (int32_t)((uint32_t)acc << left);
  /* SaturatingRoundingDoublingHighMul(x, multiplier) */
  int32_t high;
  if (x == INT32_MIN && multiplier == INT32_MIN) {
    high = INT32_MAX;
  } else {
    int64_t ab = (int64_t)x * (int64_t)multiplier;
    int64_t t = ab + (ab >= 0 ? (1 << 30) : (1 - (1 << 30)));
    high = (int32_t)(t >= 0 ? (t >> 31) : -((-t) >> 31)); /* division by 2^31 truncating toward zero */
  }
  /* RoundingDivideByPOT(high, right) */
  int32_t mask = (int32_t)((1u << right) - 1u);
  int32_t remainder = high & mask;
  int32_t threshold = (mask >> 1) + (high < 0 ? 1 : 0);
  return (high >> right) + (remainder > threshold ? 1 : 0);
}

static inline int32_t round_half_away(float v) {
  if (v > 512.0f) v = 512.0f;
  if (v < -512.0f) v = -512.0f;
  return v >= 0.0f ? (int32_t)(v + 0.5f) : (int32_t)(v - 0.5f);
}

void edgecc_q8_quantize(const float* x, int8_t* y, int c, int h, int w, float scale, int32_t zp) {
  for (int ch = 0; ch < c; ch++)
    for (int i = 0; i < h * w; i++)
      y[i * c + ch] = (int8_t)clamp_i8(round_half_away(x[ch * h * w + i] / scale) + zp, -128);
}

void edgecc_q8_dequantize(const int8_t* x, float* y, int c, int h, int w, float scale, int32_t zp) {
  for (int ch = 0; ch < c; ch++)
    for (int i = 0; i < h * w; i++) y[ch * h * w + i] = (float)(x[i * c + ch] - zp) * scale;
}

/* position of element k of an im2col row in the SMLAD order (x0, x2, x1, x3) */
static inline int row_pos(int k) {
  static const uint8_t perm[4] = {0, 2, 1, 3};
  return (k & ~3) | perm[k & 3];
}

/* one im2col row for output pixel (oy, ox); returns nothing, fills kdim4 int16 */
static void im2col_row(const edgecc_q8_conv_params* p, const int8_t* in, int oy, int ox, int16_t* row, int kdim4) {
  const int ic = p->ic;
  const int32_t zp = p->zp_in;
  int k = 0;
#if EDGECC_Q8_DSP
  if ((ic & 3) == 0) { /* four channels at a time: one word in, two words out */
    const int16x2_t zp2 = (int16x2_t)(((uint32_t)(uint16_t)zp << 16) | (uint16_t)zp);
    int32_t* row32 = (int32_t*)row;
    for (int ky = 0; ky < p->kh; ky++) {
      const int iy = oy * p->sh - p->ph + ky;
      for (int kx = 0; kx < p->kw; kx++) {
        const int ix = ox * p->sw - p->pw + kx;
        if (iy < 0 || iy >= p->ih || ix < 0 || ix >= p->iw) {
          for (int c = 0; c < ic; c += 4) { row32[k >> 1] = 0; row32[(k >> 1) + 1] = 0; k += 4; }
        } else {
          const int32_t* src = (const int32_t*)(in + (iy * p->iw + ix) * ic);
          for (int c = 0; c < ic; c += 4) {
            int32_t v = *src++;
            row32[k >> 1] = (int32_t)__ssub16(__sxtb16(v), zp2);
            row32[(k >> 1) + 1] = (int32_t)__ssub16(__sxtb16(ror8(v)), zp2);
            k += 4;
          }
        }
      }
    }
    return;
  }
#endif
  for (int ky = 0; ky < p->kh; ky++) {
    const int iy = oy * p->sh - p->ph + ky;
    for (int kx = 0; kx < p->kw; kx++) {
      const int ix = ox * p->sw - p->pw + kx;
      const int inside = iy >= 0 && iy < p->ih && ix >= 0 && ix < p->iw;
      const int8_t* src = in + (iy * p->iw + ix) * ic;
      for (int c = 0; c < ic; c++, k++) row[row_pos(k)] = inside ? (int16_t)(src[c] - zp) : 0;
    }
  }
  for (; k < kdim4; k++) row[row_pos(k)] = 0;
}

void edgecc_q8_conv(const edgecc_q8_conv_params* p, const int8_t* in, const int8_t* weights, const int32_t* bias,
                    const int32_t* multiplier, const int8_t* shift, int8_t* out, int16_t* scratch) {
  const int kdim4 = (p->kh * p->kw * p->ic + 3) & ~3;
  const int oc = p->oc;
  for (int oy = 0; oy < p->oh; oy++) {
    for (int ox = 0; ox < p->ow; ox++) {
      im2col_row(p, in, oy, ox, scratch, kdim4);
      int8_t* dst = out + (oy * p->ow + ox) * oc;
      const int8_t* w = weights;
      int o = 0;
#if EDGECC_Q8_DSP
      /* two output channels per pass: each im2col word is loaded once for both */
      for (; o + 1 < oc; o += 2, w += 2 * kdim4) {
        int32_t acc0 = bias[o], acc1 = bias[o + 1];
        const int32_t* w0 = (const int32_t*)w;
        const int32_t* w1 = (const int32_t*)(w + kdim4);
        const int32_t* r32 = (const int32_t*)scratch;
        for (int j = 0; j < kdim4 / 4; j++) {
          const int16x2_t r0 = (int16x2_t)r32[2 * j], r1 = (int16x2_t)r32[2 * j + 1];
          const int32_t a = w0[j], b = w1[j];
          acc0 = __smlad(__sxtb16(a), r0, acc0);
          acc0 = __smlad(__sxtb16(ror8(a)), r1, acc0);
          acc1 = __smlad(__sxtb16(b), r0, acc1);
          acc1 = __smlad(__sxtb16(ror8(b)), r1, acc1);
        }
        dst[o] = (int8_t)clamp_i8(edgecc_q8_requantize(acc0, multiplier[o], shift[o]) + p->zp_out, p->act_min);
        dst[o + 1] =
            (int8_t)clamp_i8(edgecc_q8_requantize(acc1, multiplier[o + 1], shift[o + 1]) + p->zp_out, p->act_min);
      }
#endif
      for (; o < oc; o++, w += kdim4) {
        int32_t acc = bias[o];
#if EDGECC_Q8_DSP
        const int32_t* w32 = (const int32_t*)w;
        const int32_t* r32 = (const int32_t*)scratch;
        for (int j = 0; j < kdim4 / 4; j++) {
          const int32_t wv = w32[j];
          acc = __smlad(__sxtb16(wv), (int16x2_t)r32[2 * j], acc);
          acc = __smlad(__sxtb16(ror8(wv)), (int16x2_t)r32[2 * j + 1], acc);
        }
#else
        for (int j = 0; j < kdim4; j += 4) {
          acc += w[j] * scratch[j] + w[j + 2] * scratch[j + 1] + w[j + 1] * scratch[j + 2] +
                 w[j + 3] * scratch[j + 3];
        }
#endif
        dst[o] = (int8_t)clamp_i8(edgecc_q8_requantize(acc, multiplier[o], shift[o]) + p->zp_out, p->act_min);
      }
    }
  }
}

void edgecc_q8_depthwise_conv(const edgecc_q8_conv_params* p, const int8_t* in, const int8_t* weights,
                              const int32_t* bias, const int32_t* multiplier, const int8_t* shift, int8_t* out,
                              int32_t* scratch) {
  const int c = p->ic;
  const int32_t zp = p->zp_in;
  for (int oy = 0; oy < p->oh; oy++) {
    for (int ox = 0; ox < p->ow; ox++) {
      for (int ch = 0; ch < c; ch++) scratch[ch] = bias[ch];
      for (int ky = 0; ky < p->kh; ky++) {
        const int iy = oy * p->sh - p->ph + ky;
        if (iy < 0 || iy >= p->ih) continue;
        for (int kx = 0; kx < p->kw; kx++) {
          const int ix = ox * p->sw - p->pw + kx;
          if (ix < 0 || ix >= p->iw) continue;
          const int8_t* src = in + (iy * p->iw + ix) * c;
          const int8_t* w = weights + (ky * p->kw + kx) * c;
          for (int ch = 0; ch < c; ch++) scratch[ch] += (src[ch] - zp) * w[ch];
        }
      }
      int8_t* dst = out + (oy * p->ow + ox) * c;
      for (int ch = 0; ch < c; ch++)
        dst[ch] = (int8_t)clamp_i8(edgecc_q8_requantize(scratch[ch], multiplier[ch], shift[ch]) + p->zp_out,
                                   p->act_min);
    }
  }
}

void edgecc_q8_add(const edgecc_q8_add_params* p, const int8_t* a, const int8_t* b, int8_t* out, int n) {
  for (int i = 0; i < n; i++) {
    const int32_t xa = edgecc_q8_requantize((a[i] - p->zp_a) * (1 << 20), p->mult_a, p->shift_a);
    const int32_t xb = edgecc_q8_requantize((b[i] - p->zp_b) * (1 << 20), p->mult_b, p->shift_b);
    out[i] = (int8_t)clamp_i8(edgecc_q8_requantize(xa + xb, p->mult_out, p->shift_out) + p->zp_out, p->act_min);
  }
}

void edgecc_q8_maxpool(const edgecc_q8_conv_params* p, const int8_t* in, int8_t* out) {
  const int c = p->ic;
  for (int oy = 0; oy < p->oh; oy++) {
    for (int ox = 0; ox < p->ow; ox++) {
      int8_t* dst = out + (oy * p->ow + ox) * c;
      for (int ch = 0; ch < c; ch++) dst[ch] = -128;
      for (int ky = 0; ky < p->kh; ky++) {
        const int iy = oy * p->sh - p->ph + ky;
        if (iy < 0 || iy >= p->ih) continue;
        for (int kx = 0; kx < p->kw; kx++) {
          const int ix = ox * p->sw - p->pw + kx;
          if (ix < 0 || ix >= p->iw) continue;
          const int8_t* src = in + (iy * p->iw + ix) * c;
          for (int ch = 0; ch < c; ch++)
            if (src[ch] > dst[ch]) dst[ch] = src[ch];
        }
      }
    }
  }
}

void edgecc_q8_global_avgpool(const int8_t* in, int8_t* out, int h, int w, int c) {
  const int32_t count = h * w;
  for (int ch = 0; ch < c; ch++) {
    int32_t acc = 0;
    for (int i = 0; i < count; i++) acc += in[i * c + ch];
    acc = acc >= 0 ? (acc + count / 2) / count : -((-acc + count / 2) / count);
    out[ch] = (int8_t)clamp_i8(acc, -128);
  }
}
