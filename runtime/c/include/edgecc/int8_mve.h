/* edgecc int8 kernels, Helium (MVE) build: private to int8_kernels.c, which includes it on cores with integer MVE
 * (Cortex-M55: __ARM_FEATURE_MVE & 1) and calls these from the public kernels. It lives beside the public headers
 * only so that every firmware build (bundle, profiling rebuild) finds it with the -I it already passes; it is not
 * an API. Same arithmetic as the DSP build, bit-exact with edgecc.compiler.squeeze.quant.run_int8.
 *
 * Convolution: the GEMM multiplies int8 by int8 with VMLADAVA (16 MACs into a scalar accumulator per
 * instruction), 2 output channels x 2 output pixels per step. The input zero point is not subtracted from the
 * activations (x - zp does not fit int8); sum_k w (x - zp) = sum_k w x - zp sum_k w, and the second term is
 * folded into the bias once per call for a chunk of channels (padding then holds zp itself, so it contributes 0).
 * The weight layout is the DSP build's (channel pairs interleaved word by word per group of four k): VLD2 on
 * 32-bit elements deinterleaves a pair's 32 bytes into each channel's 16 contiguous k. Rows whose length is not a
 * multiple of 16 end with a predicated step (gathers and VCTP-predicated loads that read nothing past the row).
 * 1x1 convolutions without padding read their input pixels in place (no im2col). Requantization is vectorized
 * over 4 channels: VQRDMULH is gemmlowp's SaturatingRoundingDoublingHighMul for these multipliers, and
 * RoundingDivideByPOT(h, r) = VRSHL(h - [h < 0], -r) for r >= 1 (round half away from zero from VRSHL's half up).
 *
 * Depthwise: 8 channels per vector as int16 (x - zp, w), VMULLB / VMULLT into int32 accumulators of the even and
 * odd channels, channel blocks outermost so that each block's requantization parameters are set up once.
 * Add: 4 elements per vector in int32, the same rescales as the scalar code.
 */
#ifndef EDGECC_INT8_MVE_H_
#define EDGECC_INT8_MVE_H_

#include <arm_mve.h>
#include <stdint.h>

#include "edgecc/int8.h"

/* output channels per pass of the conv: their folded biases and a pixel pair's accumulators live on the stack */
#define Q8_MVE_CHUNK 64

/* loads and stores of 4 lanes: unpredicated where `full` (a constant after inlining; gcc keeps a predicated
 * form with an all-true predicate as VPST + the T form, two instructions) */
#define Q8_MVE_INLINE static inline __attribute__((always_inline))
Q8_MVE_INLINE int32x4_t q8_mve_ld8(const int8_t* a, mve_pred16_t pr, int full) {
  return full ? vldrbq_s32(a) : vldrbq_z_s32(a, pr);
}
Q8_MVE_INLINE int32x4_t q8_mve_ld32(const int32_t* a, mve_pred16_t pr, int full) {
  return full ? vldrwq_s32(a) : vldrwq_z_s32(a, pr);
}
Q8_MVE_INLINE void q8_mve_st8(int8_t* out, int32x4_t v, mve_pred16_t pr, int full) {
  if (full)
    vstrbq_s32(out, v);
  else
    vstrbq_p_s32(out, v, pr);
}

/* per-lane requantization parameters of 4 output channels */
typedef struct {
  int32x4_t mult, left, neg_right, zp, lo;
  mve_pred16_t round; /* lanes with a right shift: RoundingDivideByPOT's fix-up applies */
} q8_mve_scale;

static inline q8_mve_scale q8_mve_scale_of(int32x4_t mult, int32x4_t shift, int32_t zp, int32_t lo) {
  const int32x4_t zero = vdupq_n_s32(0);
  q8_mve_scale s = {mult, vmaxq_s32(shift, zero), vminq_s32(shift, zero), vdupq_n_s32(zp), vdupq_n_s32(lo),
                    vcmpltq_n_s32(shift, 0)};
  return s;
}

/* edgecc_q8_requantize per lane (multipliers >= 0), + zero point, clamped to [lo, 127] */
static inline int32x4_t q8_mve_store(int32x4_t acc, q8_mve_scale s) {
  int32x4_t h = vqrdmulhq_s32(vshlq_s32(acc, s.left), s.mult);
  h = vaddq_m_s32(h, h, vshrq_n_s32(h, 31), s.round);
  h = vaddq_s32(vrshlq_s32(h, s.neg_right), s.zp);
  return vminq_s32(vmaxq_s32(h, s.lo), vdupq_n_s32(127));
}

/* full vectors unpredicated, then one predicated step (VCTP: nothing is read or written past n) */
static inline void q8_mve_copy(int8_t* dst, const int8_t* src, int n) {
  int i = 0;
  for (; i + 16 <= n; i += 16) vstrbq_s8(dst + i, vldrbq_s8(src + i));
  if (i < n) {
    const mve_pred16_t pr = vctp8q((uint32_t)(n - i));
    vstrbq_p_s8(dst + i, vldrbq_z_s8(src + i, pr), pr);
  }
}

static inline void q8_mve_fill(int8_t* dst, int8x16_t v, int n) {
  int i = 0;
  for (; i + 16 <= n; i += 16) vstrbq_s8(dst + i, v);
  if (i < n) vstrbq_p_s8(dst + i, v, vctp8q((uint32_t)(n - i)));
}

/* output pixel q's window as kdim int8 in (ky, kx, c) order; taps outside the image hold the input zero point */
static void q8_mve_im2col(const edgecc_q8_conv_params* p, const int8_t* in, int q, int8_t* dst) {
  const int ic = p->ic, oy = q / p->ow, ox = q - oy * p->ow, row = p->kw * ic;
  const int iy0 = oy * p->sh - p->ph, ix0 = ox * p->sw - p->pw;
  const int kx0 = ix0 < 0 ? -ix0 : 0, kx1 = p->iw - ix0 < p->kw ? p->iw - ix0 : p->kw;
  const int8x16_t zp = vdupq_n_s8((int8_t)p->zp_in);
  for (int ky = 0; ky < p->kh; ky++, dst += row) {
    const int iy = iy0 + ky;
    if (iy < 0 || iy >= p->ih || kx1 <= kx0) {
      q8_mve_fill(dst, zp, row);
      continue;
    }
    q8_mve_fill(dst, zp, kx0 * ic); /* the taps of one row inside the image are contiguous in NHWC */
    q8_mve_copy(dst + kx0 * ic, in + (iy * p->iw + ix0 + kx0) * ic, (kx1 - kx0) * ic);
    q8_mve_fill(dst + kx1 * ic, zp, (p->kw - kx1) * ic);
  }
}

/* a row of kdim k: `body` full steps of 16, then `tail_k` (0..15) k in `tail_groups` groups of 4 */
typedef struct {
  int body, tail_groups;
  uint32_t tail_k;
} q8_mve_row;

/* byte offsets of channel 0's and channel 1's words in a pair's 4 interleaved groups */
static inline uint32x4_t q8_mve_pair_offsets(int second) {
  return vaddq_n_u32(vmulq_n_u32(vidupq_n_u32(0, 1), 8), second ? 4u : 0u);
}

/* sum_k w of a channel pair (w: the pair's interleaved rows) into s[0], s[1] */
static inline void q8_mve_pair_sums(const int8_t* w, q8_mve_row r, int32_t* s) {
  int32_t s0 = 0, s1 = 0;
  for (int i = 0; i < r.body; i++, w += 32) {
    const int32x4x2_t v = vld2q_s32((const int32_t*)w);
    s0 = vaddvaq_s8(s0, vreinterpretq_s8_s32(v.val[0]));
    s1 = vaddvaq_s8(s1, vreinterpretq_s8_s32(v.val[1]));
  }
  if (r.tail_groups) {
    const mve_pred16_t pw = vctp32q((uint32_t)r.tail_groups);
    s0 = vaddvaq_s8(s0, vreinterpretq_s8_s32(vldrwq_gather_offset_z_s32((const int32_t*)w, q8_mve_pair_offsets(0), pw)));
    s1 = vaddvaq_s8(s1, vreinterpretq_s8_s32(vldrwq_gather_offset_z_s32((const int32_t*)w, q8_mve_pair_offsets(1), pw)));
  }
  s[0] = s0;
  s[1] = s1;
}

/* sum_k w of one plain row (the odd last channel) */
static inline int32_t q8_mve_row_sum(const int8_t* w, q8_mve_row r) {
  int32_t s = 0;
  for (int i = 0; i < r.body; i++, w += 16) s = vaddvaq_s8(s, vldrbq_s8(w));
  if (r.tail_groups) s = vaddvaq_s8(s, vldrbq_z_s8(w, vctp8q(4u * (uint32_t)r.tail_groups)));
  return s;
}

/* channels (2i, 2i+1) x pixels (x0, x1): a0[0..1], a1[0..1] = the channels' biases b + their dot products */
Q8_MVE_INLINE void q8_mve_dot_2x2(const int8_t* w, const int8_t* x0, const int8_t* x1,
                                                                 q8_mve_row r, const int32_t* b, int32_t* a0,
                                                                 int32_t* a1) {
  int32_t a00 = b[0], a01 = b[1], a10 = b[0], a11 = b[1];
  for (int i = 0; i < r.body; i++, w += 32, x0 += 16, x1 += 16) {
    const int32x4x2_t v = vld2q_s32((const int32_t*)w);
    const int8x16_t w0 = vreinterpretq_s8_s32(v.val[0]), w1 = vreinterpretq_s8_s32(v.val[1]);
    const int8x16_t y0 = vldrbq_s8(x0), y1 = vldrbq_s8(x1);
    a00 = vmladavaq_s8(a00, w0, y0);
    a01 = vmladavaq_s8(a01, w1, y0);
    a10 = vmladavaq_s8(a10, w0, y1);
    a11 = vmladavaq_s8(a11, w1, y1);
  }
  if (r.tail_k) { /* gathers of the last groups (zero beyond them) and the pixels' last k (zero beyond kdim) */
    const mve_pred16_t pw = vctp32q((uint32_t)r.tail_groups), px = vctp8q(r.tail_k);
    const int8x16_t w0 = vreinterpretq_s8_s32(vldrwq_gather_offset_z_s32((const int32_t*)w, q8_mve_pair_offsets(0), pw));
    const int8x16_t w1 = vreinterpretq_s8_s32(vldrwq_gather_offset_z_s32((const int32_t*)w, q8_mve_pair_offsets(1), pw));
    const int8x16_t y0 = vldrbq_z_s8(x0, px), y1 = vldrbq_z_s8(x1, px);
    a00 = vmladavaq_s8(a00, w0, y0);
    a01 = vmladavaq_s8(a01, w1, y0);
    a10 = vmladavaq_s8(a10, w0, y1);
    a11 = vmladavaq_s8(a11, w1, y1);
  }
  a0[0] = a00;
  a0[1] = a01;
  a1[0] = a10;
  a1[1] = a11;
}

/* the odd last channel (a plain row) x pixels (x0, x1) */
static inline void q8_mve_dot_1x2(const int8_t* w, const int8_t* x0, const int8_t* x1, q8_mve_row r,
                                  const int32_t* bias, int32_t* a0, int32_t* a1) {
  int32_t a = *bias, b = *bias;
  for (int i = 0; i < r.body; i++, w += 16, x0 += 16, x1 += 16) {
    const int8x16_t wv = vldrbq_s8(w);
    a = vmladavaq_s8(a, wv, vldrbq_s8(x0));
    b = vmladavaq_s8(b, wv, vldrbq_s8(x1));
  }
  if (r.tail_k) {
    const mve_pred16_t px = vctp8q(r.tail_k);
    const int8x16_t wv = vldrbq_z_s8(w, vctp8q(4u * (uint32_t)r.tail_groups));
    a = vmladavaq_s8(a, wv, vldrbq_z_s8(x0, px));
    b = vmladavaq_s8(b, wv, vldrbq_z_s8(x1, px));
  }
  *a0 = a;
  *a1 = b;
}

/* requantize 4 channels (predicate pr) of `pixels` pixels' accumulators (rows of Q8_MVE_CHUNK) into out */
Q8_MVE_INLINE void q8_mve_requantize4(const int32_t* acc, int pixels, int oc,
                                                                     const int32_t* mult, const int8_t* shift,
                                                                     int32_t zp, int32_t lo, int8_t* out,
                                                                     mve_pred16_t pr, int full) {
  const q8_mve_scale s = q8_mve_scale_of(q8_mve_ld32(mult, pr, full), q8_mve_ld8(shift, pr, full), zp, lo);
  q8_mve_st8(out, q8_mve_store(q8_mve_ld32(acc, pr, full), s), pr, full);
  if (pixels == 2) q8_mve_st8(out + oc, q8_mve_store(q8_mve_ld32(acc + Q8_MVE_CHUNK, pr, full), s), pr, full);
}

/* requantize n channels of `pixels` pixels into out (pixel stride oc): groups of 4 unpredicated, then the rest */
static void q8_mve_requantize(const edgecc_q8_conv_params* p, const int32_t* acc, int pixels, int n,
                              const int32_t* mult, const int8_t* shift, int8_t* out) {
  const int oc = p->oc;
  const int32_t zp = p->zp_out, lo = p->act_min; /* locals: the int8 stores could alias *p */
  int c = 0;
  for (; c + 4 <= n; c += 4) q8_mve_requantize4(acc + c, pixels, oc, mult + c, shift + c, zp, lo, out + c, 0, 1);
  if (c < n)
    q8_mve_requantize4(acc + c, pixels, oc, mult + c, shift + c, zp, lo, out + c, vctp32q((uint32_t)(n - c)), 0);
}

/* one depthwise channel block: its biases and scales split by even / odd channel (the int16 products' order) */
typedef struct {
  int32x4_t be, bo;
  q8_mve_scale se, so;
  mve_pred16_t p16;
} q8_mve_dw_block;

Q8_MVE_INLINE int16x8_t q8_mve_ld8x8(const int8_t* a, mve_pred16_t pr, int full) {
  return full ? vldrbq_s16(a) : vldrbq_z_s16(a, pr);
}

/* one output pixel of a block: taps ky0..ky1 x kx0..kx1 from src0 (tap (0, 0) of the window, channel ch); `full`:
 * all 8 channels (no predicate) */
Q8_MVE_INLINE void q8_mve_dw_pixel(const q8_mve_dw_block* blk, const edgecc_q8_conv_params* p, const int8_t* src0,
                                   const int8_t* weights, int ky0, int ky1, int kx0, int kx1, int8_t* dst, int full) {
  const int c = p->ic, rowstep = p->iw * c, kw = p->kw;
  const int16_t zp = (int16_t)p->zp_in;
  const mve_pred16_t p16 = blk->p16;
  int32x4_t ae = blk->be, ao = blk->bo;
#define Q8_MVE_DW_TAP(x, w)                                       \
  do {                                                            \
    const int16x8_t xv = vsubq_n_s16(q8_mve_ld8x8((x), p16, full), zp); \
    const int16x8_t wv = q8_mve_ld8x8((w), p16, full);                  \
    ae = vaddq_s32(ae, vmullbq_int_s16(xv, wv));                  \
    ao = vaddq_s32(ao, vmulltq_int_s16(xv, wv));                  \
  } while (0)
  for (int ky = ky0; ky < ky1; ky++) {
    const int8_t* x = src0 + ky * rowstep;
    const int8_t* w = weights + ky * kw * c;
    if (kw == 3 && kx0 == 0 && kx1 == 3) { /* a 3-wide row inside the image: unrolled */
      Q8_MVE_DW_TAP(x, w);
      Q8_MVE_DW_TAP(x + c, w + c);
      Q8_MVE_DW_TAP(x + 2 * c, w + 2 * c);
    } else {
      for (int kx = kx0; kx < kx1; kx++) Q8_MVE_DW_TAP(x + kx * c, w + kx * c);
    }
  }
#undef Q8_MVE_DW_TAP
  /* back to channel order: the even channels' int32 narrowed into the bottom halves, the odd into the top */
  const int16x8_t v = vmovntq_s32(vmovnbq_s32(vdupq_n_s16(0), q8_mve_store(ae, blk->se)), q8_mve_store(ao, blk->so));
  if (full)
    vstrbq_s16(dst, v);
  else
    vstrbq_p_s16(dst, v, p16);
}

/* output row oy of a block (channels ch..ch+7 of every pixel) */
Q8_MVE_INLINE void q8_mve_dw_row(const q8_mve_dw_block* blk, const edgecc_q8_conv_params* p, const int8_t* in,
                                 const int8_t* weights, int oy, int8_t* out, int full) {
  const int c = p->ic, iy0 = oy * p->sh - p->ph, ky0 = iy0 < 0 ? -iy0 : 0;
  const int ky1 = p->ih - iy0 < p->kh ? p->ih - iy0 : p->kh;
  for (int ox = 0; ox < p->ow; ox++) {
    const int ix0 = ox * p->sw - p->pw, kx0 = ix0 < 0 ? -ix0 : 0;
    const int kx1 = p->iw - ix0 < p->kw ? p->iw - ix0 : p->kw;
    /* tap (0, 0) of the window, maybe outside the image: only offset from */
    q8_mve_dw_pixel(blk, p, in + (iy0 * p->iw + ix0) * c, weights, ky0, ky1, kx0, kx1, out + (oy * p->ow + ox) * c,
                    full);
  }
}

/* the two forms, not inlined: the tap loop then has the vector registers to itself (inlined into the block loop,
 * gcc spilled the products) */
static __attribute__((noinline)) void q8_mve_dw_row8(const q8_mve_dw_block* blk, const edgecc_q8_conv_params* p,
                                                     const int8_t* in, const int8_t* weights, int oy, int8_t* out) {
  q8_mve_dw_row(blk, p, in, weights, oy, out, 1);
}

static __attribute__((noinline)) void q8_mve_dw_row_tail(const q8_mve_dw_block* blk, const edgecc_q8_conv_params* p,
                                                         const int8_t* in, const int8_t* weights, int oy,
                                                         int8_t* out) {
  q8_mve_dw_row(blk, p, in, weights, oy, out, 0);
}

/* Depthwise (edgecc_q8_depthwise_conv's contract; no scratch): blocks of 8 channels (the last predicated)
 * outermost, so that each block's parameters are gathered once. */
static void q8_mve_depthwise_conv(const edgecc_q8_conv_params* p, const int8_t* in, const int8_t* weights,
                                  const int32_t* bias, const int32_t* multiplier, const int8_t* shift, int8_t* out) {
  const int c = p->ic;
  const uint32x4_t even = vidupq_n_u32(0, 2), odd = vidupq_n_u32(1, 2);
  q8_mve_dw_block blk;
  for (int ch = 0; ch < c; ch += 8) {
    const uint32_t left = (uint32_t)(c - ch);
    const mve_pred16_t pe = vctp32q((left + 1) >> 1), po = vctp32q(left >> 1);
    blk.p16 = vctp16q(left);
    blk.se = q8_mve_scale_of(vldrwq_gather_shifted_offset_z_s32(multiplier + ch, even, pe),
                             vldrbq_gather_offset_z_s32(shift + ch, even, pe), p->zp_out, p->act_min);
    blk.so = q8_mve_scale_of(vldrwq_gather_shifted_offset_z_s32(multiplier + ch, odd, po),
                             vldrbq_gather_offset_z_s32(shift + ch, odd, po), p->zp_out, p->act_min);
    blk.be = vldrwq_gather_shifted_offset_z_s32(bias + ch, even, pe);
    blk.bo = vldrwq_gather_shifted_offset_z_s32(bias + ch, odd, po);
    for (int oy = 0; oy < p->oh; oy++)
      (left >= 8 ? q8_mve_dw_row8 : q8_mve_dw_row_tail)(&blk, p, in + ch, weights + ch, oy, out + ch);
  }
}

/* TFLite ADD (edgecc_q8_add's contract; out may be a or b): 4 elements a vector, each input rescaled in int32 */
typedef struct {
  int32_t mult, left, neg_right;
  mve_pred16_t round;
} q8_mve_uniform;

static inline q8_mve_uniform q8_mve_uniform_of(int32_t mult, int32_t shift) {
  q8_mve_uniform u = {mult, shift > 0 ? shift : 0, shift > 0 ? 0 : shift, shift < 0 ? 0xffff : 0};
  return u;
}

static inline int32x4_t q8_mve_rescale_n(int32x4_t x, q8_mve_uniform u) {
  int32x4_t h = vqrdmulhq_n_s32(vshlq_r_s32(x, u.left), u.mult);
  h = vaddq_m_s32(h, h, vshrq_n_s32(h, 31), u.round);
  return vrshlq_n_s32(h, u.neg_right);
}

/* TFLite ADD on 4 elements (predicate pr); `fix`: all three rescales shift right, so RoundingDivideByPOT's
 * fix-up applies in every lane without a predicate (the common case: the compiler inlines both forms) */
Q8_MVE_INLINE void q8_mve_add4(const int8_t* a, const int8_t* b, int8_t* out,
                                                              const int32_t* k, q8_mve_uniform ua, q8_mve_uniform ub,
                                                              q8_mve_uniform uo, int fix, mve_pred16_t pr,
                                                              int full) {
  /* (a - zp_a) 2^20 2^left_a as one shift: the scalar code's two wrap the same way */
  int32x4_t xa = vshlq_r_s32(vsubq_n_s32(q8_mve_ld8(a, pr, full), k[0]), 20 + ua.left);
  int32x4_t xb = vshlq_r_s32(vsubq_n_s32(q8_mve_ld8(b, pr, full), k[1]), 20 + ub.left);
  xa = vqrdmulhq_n_s32(xa, ua.mult);
  xb = vqrdmulhq_n_s32(xb, ub.mult);
  if (fix) {
    xa = vaddq_s32(xa, vshrq_n_s32(xa, 31));
    xb = vaddq_s32(xb, vshrq_n_s32(xb, 31));
  } else {
    xa = vaddq_m_s32(xa, xa, vshrq_n_s32(xa, 31), ua.round);
    xb = vaddq_m_s32(xb, xb, vshrq_n_s32(xb, 31), ub.round);
  }
  int32x4_t v = vaddq_s32(vrshlq_n_s32(xa, ua.neg_right), vrshlq_n_s32(xb, ub.neg_right));
  v = vqrdmulhq_n_s32(fix ? v : vshlq_r_s32(v, uo.left), uo.mult);
  v = fix ? vaddq_s32(v, vshrq_n_s32(v, 31)) : vaddq_m_s32(v, v, vshrq_n_s32(v, 31), uo.round);
  v = vaddq_n_s32(vrshlq_n_s32(v, uo.neg_right), k[2]);
  q8_mve_st8(out, vminq_s32(vmaxq_s32(v, vdupq_n_s32(k[3])), vdupq_n_s32(127)), pr, full);
}

Q8_MVE_INLINE void q8_mve_add_loop(const int8_t* a, const int8_t* b, int8_t* out, int n,
                                                                  const int32_t* k, q8_mve_uniform ua,
                                                                  q8_mve_uniform ub, q8_mve_uniform uo, int fix) {
  int i = 0;
  for (; i + 4 <= n; i += 4) q8_mve_add4(a + i, b + i, out + i, k, ua, ub, uo, fix, 0, 1);
  if (i < n) q8_mve_add4(a + i, b + i, out + i, k, ua, ub, uo, fix, vctp32q((uint32_t)(n - i)), 0);
}

/* edgecc_q8_add_params split once (the fused conv + add calls the rows once per pixel pair) */
typedef struct {
  q8_mve_uniform ua, ub, uo;
  int32_t k[4]; /* zp_a, zp_b, zp_out, act_min */
  int fix;
} q8_mve_add_plan;

static inline q8_mve_add_plan q8_mve_add_plan_of(const edgecc_q8_add_params* p) {
  q8_mve_add_plan a = {q8_mve_uniform_of(p->mult_a, p->shift_a), q8_mve_uniform_of(p->mult_b, p->shift_b),
                       q8_mve_uniform_of(p->mult_out, p->shift_out), {p->zp_a, p->zp_b, p->zp_out, p->act_min},
                       p->shift_a < 0 && p->shift_b < 0 && p->shift_out < 0};
  return a;
}

/* out[i] = a[i] + b[i] for i < n; out may be a or b (each vector is read before it is written) */
static void q8_mve_add_rows(const q8_mve_add_plan* plan, const int8_t* a, const int8_t* b, int8_t* out, int n) {
  const q8_mve_add_plan c = *plan; /* a local copy: the int8 stores could alias *plan */
  if (c.fix)
    q8_mve_add_loop(a, b, out, n, c.k, c.ua, c.ub, c.uo, 1);
  else
    q8_mve_add_loop(a, b, out, n, c.k, c.ua, c.ub, c.uo, 0);
}

static void q8_mve_add(const edgecc_q8_add_params* p, const int8_t* a, const int8_t* b, int8_t* out, int n) {
  const q8_mve_add_plan plan = q8_mve_add_plan_of(p);
  q8_mve_add_rows(&plan, a, b, out, n);
}

/* The conv: edgecc_q8_conv's contract, or with `add` edgecc_q8_conv_add's (the conv's int8 values of a pixel pair go
 * to the 2 x oc bytes after the conv's scratch, then the add takes them with the residual into out, which may be
 * the residual). The conv's scratch (4 kdim4 bytes) holds the two pixels' int8 windows here (2 kdim4). */
static void q8_mve_conv(const edgecc_q8_conv_params* p, const int8_t* in, const int8_t* weights, const int32_t* bias,
                        const int32_t* multiplier, const int8_t* shift, const edgecc_q8_add_params* add,
                        const int8_t* residual, int8_t* out, int8_t* scratch) {
  const int kdim = p->kh * p->kw * p->ic, groups = (kdim + 3) >> 2, kdim4 = 4 * groups;
  const int oc = p->oc, npix = p->oh * p->ow;
  const q8_mve_row r = {kdim >> 4, groups - 4 * (kdim >> 4), (uint32_t)(kdim & 15)};
  const int direct = p->kh == 1 && p->kw == 1 && p->ph == 0 && p->pw == 0; /* pixels read in place */
  int32_t bias_z[Q8_MVE_CHUNK], acc[2 * Q8_MVE_CHUNK];
  int8_t* values = scratch + 4 * kdim4; /* the fused add's operand a: a pixel pair's conv values, pixel stride oc */
  q8_mve_add_plan plan;
  if (add) plan = q8_mve_add_plan_of(add);
  for (int o0 = 0; o0 < oc; o0 += Q8_MVE_CHUNK) {
    const int n = oc - o0 < Q8_MVE_CHUNK ? oc - o0 : Q8_MVE_CHUNK;
    const int8_t* wc = weights + o0 * kdim4; /* chunks start on a pair: channel o0's row starts at o0 kdim4 */
    int c = 0;
    for (; c + 1 < n; c += 2) q8_mve_pair_sums(wc + c * kdim4, r, bias_z + c);
    if (c < n) bias_z[c] = q8_mve_row_sum(wc + c * kdim4, r);
    for (c = 0; c < n; c++) /* bias - zp_in sum_k w, in wrapping arithmetic (the true sum fits int32) */
      bias_z[c] = (int32_t)((uint32_t)bias[o0 + c] - (uint32_t)p->zp_in * (uint32_t)bias_z[c]);
    for (int q = 0; q < npix; q += 2) {
      const int pixels = q + 1 < npix ? 2 : 1;
      const int8_t *x0 = scratch, *x1 = scratch + kdim4;
      if (direct) {
        const int oy = q / p->ow, ox = q - oy * p->ow, q1 = q + pixels - 1, oy1 = q1 / p->ow, ox1 = q1 - oy1 * p->ow;
        x0 = in + (oy * p->sh * p->iw + ox * p->sw) * p->ic;
        x1 = in + (oy1 * p->sh * p->iw + ox1 * p->sw) * p->ic;
      } else {
        q8_mve_im2col(p, in, q, scratch);
        if (pixels == 2) q8_mve_im2col(p, in, q + 1, scratch + kdim4);
        else x1 = x0; /* the 1-pixel tail computes pixel q twice and stores it once */
      }
      for (c = 0; c + 1 < n; c += 2)
        q8_mve_dot_2x2(wc + c * kdim4, x0, x1, r, bias_z + c, acc + c, acc + Q8_MVE_CHUNK + c);
      if (c < n) q8_mve_dot_1x2(wc + c * kdim4, x0, x1, r, bias_z + c, acc + c, acc + Q8_MVE_CHUNK + c);
      if (!add) {
        q8_mve_requantize(p, acc, pixels, n, multiplier + o0, shift + o0, out + q * oc + o0);
        continue;
      }
      q8_mve_requantize(p, acc, pixels, n, multiplier + o0, shift + o0, values + o0);
      if (n == oc) { /* both pixels' rows are contiguous */
        q8_mve_add_rows(&plan, values, residual + q * oc, out + q * oc, pixels * oc);
        continue;
      }
      for (int px = 0; px < pixels; px++)
        q8_mve_add_rows(&plan, values + px * oc + o0, residual + (q + px) * oc + o0, out + (q + px) * oc + o0, n);
    }
  }
}

#endif /* EDGECC_INT8_MVE_H_ */
