/* edgecc int8 kernels (see include/edgecc/int8.h). Bit-exact with edgecc.compiler.squeeze.quant.run_int8.
 *
 * Convolutions are an im2col GEMM blocked on 2 output channels x 2 output pixels: each inner step loads one word
 * of four int8 weights per channel and the int16 im2col words of both pixels, and issues 8 SMLAD (16 MACs), so
 * every weight word is sign-extended once for two pixels and every im2col word is loaded once for two channels.
 * The im2col buffer holds two pixels; each group of four k = 4j..4j+3 of a pixel is two words (x0, x2), (x1, x3)
 * (input - zero point as int16; padding contributes 0), the order in which SXTB16 (w0, w2) and SXTB16 ROR #8
 * (w1, w3) of a weight word meet them, so no halfword packing is needed. Requantization is fused into the store.
 * Without the DSP extension the same code runs on portable C versions of SXTB16 / SMLAD / SSUB16 (host tests).
 */
#include "edgecc/int8.h"

#include <stdint.h>

#define Q8_ASM_GEMM 0
#if defined(__ARM_FEATURE_MVE) && (__ARM_FEATURE_MVE & 1)
#define Q8_MVE 1 /* Helium: the conv, depthwise and add kernels of include/edgecc/int8_mve.h */
#include "edgecc/int8_mve.h"
#else
#define Q8_MVE 0
#endif
#if defined(__ARM_FEATURE_DSP) && defined(__ARM_FEATURE_SIMD32)
#include <arm_acle.h>
#define q8_sxtb16(x) ((int32_t)__sxtb16(x))
#define q8_smlad(a, b, acc) ((int32_t)__smlad((a), (b), (acc)))
#define q8_ssub16(a, b) ((int32_t)__ssub16((a), (b)))
#define q8_ssat8(x) __ssat((x), 8)
#define q8_smlabb(a, b, acc) __smlabb((a), (b), (acc))
#define q8_smlatt(a, b, acc) __smlatt((a), (b), (acc))
#if defined(__OPTIMIZE__) /* the asm GEMM loop needs 13 registers: not at -O0, where r7 is the frame pointer */
#undef Q8_ASM_GEMM
#define Q8_ASM_GEMM 1
#endif
/* SXTB16 with its ROR #8 operand, one instruction (gcc 12 does not fold a separate rotate into __sxtb16) */
static inline int32_t q8_sxtb16_ror8(int32_t x) {
  int32_t r;
  __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
  return r;
}
#else
static inline int32_t q8_sxtb16(int32_t x) {
  return (int32_t)(((uint32_t)(int32_t)(int8_t)x & 0xffffu) | ((uint32_t)(int32_t)(int8_t)(x >> 16) << 16));
}
static inline int32_t q8_sxtb16_ror8(int32_t x) { return q8_sxtb16((int32_t)((uint32_t)x >> 8 | (uint32_t)x << 24)); }
static inline int32_t q8_smlad(int32_t a, int32_t b, int32_t acc) {
  return acc + (int16_t)a * (int16_t)b + (a >> 16) * (b >> 16);
}
static inline int32_t q8_ssub16(int32_t a, int32_t b) {
  return (int32_t)((uint32_t)(uint16_t)((int16_t)a - (int16_t)b) | ((uint32_t)((a >> 16) - (b >> 16)) << 16));
}
static inline int32_t q8_ssat8(int32_t v) { return v < -128 ? -128 : (v > 127 ? 127 : v); }
static inline int32_t q8_smlabb(int32_t a, int32_t b, int32_t acc) { return acc + (int16_t)a * (int16_t)b; }
static inline int32_t q8_smlatt(int32_t a, int32_t b, int32_t acc) { return acc + (a >> 16) * (b >> 16); }
#endif

static inline int32_t clamp_i8(int32_t v, int32_t lo) {
  return v < lo ? lo : (v > 127 ? 127 : v);
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

/* One output channel's requantization, split once per channel: acc * multiplier * 2^shift, rounded exactly as
 * edgecc_q8_requantize (gemmlowp: SaturatingRoundingDoublingHighMul, then RoundingDivideByPOT by r = -shift), +
 * zero point, clamped to [act_min, 127]. The multiplier is >= 0 (quantize_multiplier: 0 or [2^30, 2^31)), so the
 * saturation case cannot occur and the high product is h = floor((x m + 2^30) / 2^31) for either sign. For r >= 1
 * both roundings fold into one 64-bit sum: RDBPOT(h, r) = floor((h + 2^(r-1) - [h < 0]) / 2^r), and nested floors
 * of divisions compose, so the result is floor((x m + 2^30 + 2^(30+r) - [x < 0] 2^31) / 2^(31+r)) (h < 0 exactly
 * when x m + 2^30 < 0; where that differs from x < 0 both forms give 0): two SMLAL (the second adds
 * [x < 0] * INT32_MIN), one ASR of the high word; gcc's code for the int64 form is twice as long. */
typedef struct {
  int32_t mult, left, right, zp, lo;
  uint32_t nudge_lo; /* 2^30 + 2^(30+r) for r >= 1, as two words */
  int32_t nudge_hi;
} q8_scale;

static inline q8_scale q8_split(int32_t mult, int32_t shift, int32_t zp, int32_t lo) {
  const int32_t right = shift > 0 ? 0 : -shift;
  q8_scale s = {mult, shift > 0 ? shift : 0, right, zp, lo, right == 1 ? 0xc0000000u : 0x40000000u,
                right >= 2 ? (int32_t)(1u << (right - 2)) : 0};
  return s;
}

static inline q8_scale q8_channel(const edgecc_q8_conv_params* p, int32_t mult, int32_t shift) {
  return q8_split(mult, shift, p->zp_out, p->act_min);
}

/* edgecc_q8_requantize(acc, s.mult, shift) for s.mult >= 0 */
static inline int32_t q8_rescale(int32_t acc, q8_scale s) {
  if (s.right > 0) {
#if Q8_ASM_GEMM
    uint32_t lo = s.nudge_lo;
    int32_t hi = s.nudge_hi;
    __asm__("smlal %0, %1, %2, %3" : "+r"(lo), "+r"(hi) : "r"(acc), "r"(s.mult));
    __asm__("smlal %0, %1, %2, %3" : "+r"(lo), "+r"(hi) : "r"((uint32_t)acc >> 31), "r"(INT32_MIN));
    return hi >> (s.right - 1);
#else
    const int64_t nudge = (int64_t)(((uint64_t)(uint32_t)s.nudge_hi << 32) | s.nudge_lo);
    const int64_t t = (int64_t)acc * s.mult + nudge - (acc < 0 ? (int64_t)1 << 31 : 0);
    return (int32_t)(t >> 32) >> (s.right - 1);
#endif
  }
  const int32_t x = (int32_t)((uint32_t)acc << s.left);
  return (int32_t)(((int64_t)x * s.mult + (1 << 30)) >> 31);
}

/* the int8 output value, as an int32 in [-128, 127] (a STRB stores it without a sign extension first) */
static inline int32_t q8_store(int32_t acc, q8_scale s) {
  const int32_t v = q8_ssat8(q8_rescale(acc, s) + s.zp);
  return v < s.lo ? s.lo : v;
}

int32_t edgecc_q8_requantize(int32_t acc, int32_t multiplier, int32_t shift) {
  if (multiplier >= 0) return q8_rescale(acc, q8_split(multiplier, shift, 0, 0)); /* the kernels' form */
  /* gemmlowp's reference form, for negative multipliers (quantize_multiplier makes none) */
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

/* TFLite ADD, shared by edgecc_q8_add and the residual add fused into edgecc_q8_conv_add. Each input's rescale
 * depends only on its int8 value, so for long tensors (from 1024 elements) both are tabulated first (2 x 256 int32,
 * on the caller's stack: 512 rescales instead of 2n), and the sum is requantized per element. With tables and an
 * output right shift r in 2..23 the output zero point folds into the rounding nudge's high word,
 * (h >> (r-1)) + zp == (h + zp 2^(r-1)) >> (r-1) (|h| < 2^30 for any int32 sum, so that stays an int32): a sum
 * costs two byte and two table loads, two SMLAL, one ASR, SSAT and the lower clamp. */
typedef struct {
  const int32_t *ta, *tb; /* tabulated rescales of a and b (index -128..127), or NULL: rescaled per element */
  int32_t hi0, mult, sh, lo; /* the tabulated form's output rescale: nudge_hi + zp 2^sh, sh = r - 1 */
  q8_scale sa, sb, so;
  int32_t zp_a, zp_b;
} q8_residual;

/* table: 512 int32 of the caller's, or NULL (no tables) */
static void q8_residual_init(q8_residual* res, const edgecc_q8_add_params* p, int32_t* table) {
  const q8_scale so = q8_split(p->mult_out, p->shift_out, p->zp_out, p->act_min);
  const int tabulate = table && so.right >= 2 && so.right <= 23; /* r >= 2: the nudge's low word is 2^30 */
  res->sa = q8_split(p->mult_a, p->shift_a, 0, 0);
  res->sb = q8_split(p->mult_b, p->shift_b, 0, 0);
  res->so = so;
  res->zp_a = p->zp_a;
  res->zp_b = p->zp_b;
  res->ta = res->tb = 0;
  res->sh = tabulate ? so.right - 1 : 0;
  res->hi0 = so.nudge_hi + p->zp_out * (1 << res->sh);
  res->mult = so.mult;
  res->lo = p->act_min;
  if (!tabulate) return;
  int32_t *ta = table + 128, *tb = table + 384;
  for (int v = -128; v < 128; v++) {
    ta[v] = q8_rescale((v - p->zp_a) * (1 << 20), res->sa);
    tb[v] = q8_rescale((v - p->zp_b) * (1 << 20), res->sb);
  }
  res->ta = ta;
  res->tb = tb;
}

/* out[i] = a[i] + b[i], TFLite ADD; out may be a or b (each element is read before its index is written). The
 * parameters are copied to locals first: the int8 stores cannot alias them, so they stay in registers. */
__attribute__((noinline)) static void q8_add_rows(const q8_residual* res, const int8_t* a, const int8_t* b, int8_t* out,
                                                int n) {
  if (!res->ta) {
    const q8_scale sa = res->sa, sb = res->sb, so = res->so;
    const int32_t zp_a = res->zp_a, zp_b = res->zp_b;
    for (int i = 0; i < n; i++)
      out[i] = q8_store(q8_rescale((a[i] - zp_a) * (1 << 20), sa) + q8_rescale((b[i] - zp_b) * (1 << 20), sb), so);
    return;
  }
  const int32_t *ta = res->ta, *tb = res->tb, hi0 = res->hi0, mult = res->mult, sh = res->sh, lo = res->lo;
  for (int i = 0; i < n; i++) {
    const int32_t x = ta[a[i]] + tb[b[i]];
#if Q8_ASM_GEMM
    uint32_t l = 0x40000000u; /* an immediate: one register fewer in the loop */
    int32_t hi = hi0;
    __asm__("smlal %0, %1, %2, %3" : "+r"(l), "+r"(hi) : "r"(x), "r"(mult));
    __asm__("smlal %0, %1, %2, %3" : "+r"(l), "+r"(hi) : "r"((uint32_t)x >> 31), "r"(INT32_MIN));
#else
    const int64_t nudge = (int64_t)(((uint64_t)(uint32_t)hi0 << 32) | 0x40000000u);
    const int32_t hi = (int32_t)(((int64_t)x * mult + nudge - (x < 0 ? (int64_t)1 << 31 : 0)) >> 32);
#endif
    const int32_t v = q8_ssat8(hi >> sh);
    out[i] = v < lo ? lo : v;
  }
}

/* im2col of output pixel q into slot `slot` (0 or 1) of the two-pixel buffer: group j is buf[4j + 2 slot + 0, 1] */
static void im2col_pixel(const edgecc_q8_conv_params* p, const int8_t* in, int q, int32_t* buf, int slot,
                         int groups) {
  const int ic = p->ic, oy = q / p->ow, ox = q - oy * p->ow;
  const int32_t zp = p->zp_in;
  const int32_t zp2 = (int32_t)(((uint32_t)(uint16_t)zp << 16) | (uint16_t)zp);
  int32_t* dst = buf + 2 * slot;
  if ((ic & 3) == 0) { /* four channels at a time: one word in, two words out; no bounds checks for 1x1 */
    const int one = p->kh == 1 && p->kw == 1 && p->ph == 0 && p->pw == 0;
    for (int ky = 0; ky < p->kh; ky++) {
      const int iy = oy * p->sh - p->ph + ky;
      for (int kx = 0; kx < p->kw; kx++) {
        const int ix = ox * p->sw - p->pw + kx;
        if (!one && (iy < 0 || iy >= p->ih || ix < 0 || ix >= p->iw)) {
          for (int c = 0; c < ic; c += 4, dst += 4) dst[0] = dst[1] = 0;
          continue;
        }
        const int32_t* src = (const int32_t*)(in + (iy * p->iw + ix) * ic);
        for (int c = 0; c < ic; c += 4, dst += 4) {
          const int32_t v = *src++;
          dst[0] = q8_ssub16(q8_sxtb16(v), zp2);
          dst[1] = q8_ssub16(q8_sxtb16_ror8(v), zp2);
        }
      }
    }
    return;
  }
  /* any channel count (the first layer's 3): element k goes to halfword perm[k & 3] of its group */
  static const uint8_t perm[4] = {0, 2, 1, 3};
  int16_t* half = (int16_t*)dst;
  int k = 0;
  for (int ky = 0; ky < p->kh; ky++) {
    const int iy = oy * p->sh - p->ph + ky;
    for (int kx = 0; kx < p->kw; kx++) {
      const int ix = ox * p->sw - p->pw + kx;
      const int inside = iy >= 0 && iy < p->ih && ix >= 0 && ix < p->iw;
      const int8_t* src = in + (iy * p->iw + ix) * ic;
      for (int c = 0; c < ic; c++, k++) half[(k >> 2) * 8 + perm[k & 3]] = inside ? (int16_t)(src[c] - zp) : 0;
    }
  }
  for (; k < 4 * groups; k++) half[(k >> 2) * 8 + perm[k & 3]] = 0;
}

/* channels o, o+1 (weights w: per group the word of o then of o+1) x the pixel pair in buf -> d0 (pixel q), d1 */
__attribute__((noinline)) static void block_2x2(const edgecc_q8_conv_params* p, const int32_t* w, const int32_t* buf, int groups,
                      const int32_t* bias, const int32_t* mult, const int8_t* shift, int8_t* d0) {
  int32_t a00 = bias[0], a01 = bias[0], a10 = bias[1], a11 = bias[1];
#if Q8_ASM_GEMM
  /* the same loop with the four im2col words in one LDM and post-incremented weight loads: 17 instructions per
   * 16 MACs where gcc's schedule of the C loop takes 20 */
  const int32_t* end = w + 2 * groups;
  int32_t t0, t1;
  __asm__(
      "1:\n\t"
      "ldmia %[x]!, {r2, r3, r4, r5}\n\t"
      "ldr %[t0], [%[w]], #4\n\t"
      "sxtb16 %[t1], %[t0]\n\t"
      "sxtb16 %[t0], %[t0], ror #8\n\t"
      "smlad %[a00], %[t1], r2, %[a00]\n\t"
      "smlad %[a01], %[t1], r4, %[a01]\n\t"
      "smlad %[a00], %[t0], r3, %[a00]\n\t"
      "smlad %[a01], %[t0], r5, %[a01]\n\t"
      "ldr %[t0], [%[w]], #4\n\t"
      "sxtb16 %[t1], %[t0]\n\t"
      "sxtb16 %[t0], %[t0], ror #8\n\t"
      "smlad %[a10], %[t1], r2, %[a10]\n\t"
      "smlad %[a11], %[t1], r4, %[a11]\n\t"
      "smlad %[a10], %[t0], r3, %[a10]\n\t"
      "smlad %[a11], %[t0], r5, %[a11]\n\t"
      "cmp %[w], %[end]\n\t"
      "bne 1b\n\t"
      : [a00] "+r"(a00), [a01] "+r"(a01), [a10] "+r"(a10), [a11] "+r"(a11), [w] "+r"(w), [x] "+r"(buf),
        [t0] "=&r"(t0), [t1] "=&r"(t1)
      : [end] "r"(end)
      : "r2", "r3", "r4", "r5", "cc", "memory");
#else
  for (const int32_t* end = w + 2 * groups; w < end; w += 2, buf += 4) {
    const int32_t x0 = buf[0], x1 = buf[1], y0 = buf[2], y1 = buf[3];
    int32_t lo = q8_sxtb16(w[0]), hi = q8_sxtb16_ror8(w[0]);
    a00 = q8_smlad(hi, x1, q8_smlad(lo, x0, a00));
    a01 = q8_smlad(hi, y1, q8_smlad(lo, y0, a01));
    lo = q8_sxtb16(w[1]);
    hi = q8_sxtb16_ror8(w[1]);
    a10 = q8_smlad(hi, x1, q8_smlad(lo, x0, a10));
    a11 = q8_smlad(hi, y1, q8_smlad(lo, y0, a11));
  }
#endif
  /* one channel's scale at a time: fewer live registers than both channels' */
  q8_scale s = q8_channel(p, mult[0], shift[0]);
  d0[0] = q8_store(a00, s);
  d0[p->oc] = q8_store(a01, s);
  s = q8_channel(p, mult[1], shift[1]);
  d0[1] = q8_store(a10, s);
  d0[p->oc + 1] = q8_store(a11, s);
}

/* the tails: `chans` (1 or 2) channels with weight words `wstep` apart x `pixels` (1 or 2) pixels */
static void block_tail(const int32_t* w, int wstep, int chans, const int32_t* buf, int pixels, int groups,
                       const edgecc_q8_conv_params* p, const int32_t* bias, const int32_t* mult, const int8_t* shift,
                       int8_t* d0) {
  for (int c = 0; c < chans; c++) {
    const q8_scale s = q8_channel(p, mult[c], shift[c]);
    for (int px = 0; px < pixels; px++) {
      int32_t acc = bias[c];
      for (int j = 0; j < groups; j++) {
        const int32_t wv = w[j * wstep + c], *x = buf + 4 * j + 2 * px;
        acc = q8_smlad(q8_sxtb16_ror8(wv), x[1], q8_smlad(q8_sxtb16(wv), x[0], acc));
      }
      d0[px * p->oc + c] = q8_store(acc, s);
    }
  }
}

/* the conv's pixel loop. res: the fused residual add (a compile-time NULL in the plain conv's instance, whose code
 * is then the unfused one): each pixel pair's outputs go to a 2 x oc chunk after the im2col buffer, then the add
 * takes them with the residual at the same index into out (which may be the residual). Chunks of several pixel
 * pairs save the add's call per pair (about 16 instructions) but measured no better on ResNet-8. */
static inline __attribute__((always_inline)) void conv_impl(const edgecc_q8_conv_params* p, const int8_t* in,
                                                            const int8_t* weights, const int32_t* bias,
                                                            const int32_t* multiplier, const int8_t* shift,
                                                            int8_t* out, int16_t* scratch, const q8_residual* res,
                                                            const int8_t* residual) {
  const int groups = (p->kh * p->kw * p->ic + 3) >> 2, oc = p->oc, npix = p->oh * p->ow;
  int32_t* buf = (int32_t*)scratch;
  int8_t* chunk = (int8_t*)(buf + 4 * groups);
  for (int q = 0; q < npix; q += 2) {
    const int pixels = q + 1 < npix ? 2 : 1;
    im2col_pixel(p, in, q, buf, 0, groups);
    if (pixels == 2) im2col_pixel(p, in, q + 1, buf, 1, groups);
    int8_t* d0 = res ? chunk : out + q * oc;
    const int32_t* w = (const int32_t*)weights;
    int o = 0;
    for (; o + 1 < oc; o += 2, w += 2 * groups) {
      if (pixels == 2)
        block_2x2(p, w, buf, groups, bias + o, multiplier + o, shift + o, d0 + o);
      else
        block_tail(w, 2, 2, buf, 1, groups, p, bias + o, multiplier + o, shift + o, d0 + o);
    }
    if (o < oc) block_tail(w, 1, 1, buf, pixels, groups, p, bias + o, multiplier + o, shift + o, d0 + o);
    if (res) q8_add_rows(res, chunk, residual + q * oc, out + q * oc, pixels * oc);
  }
}

void edgecc_q8_conv(const edgecc_q8_conv_params* p, const int8_t* in, const int8_t* weights, const int32_t* bias,
                    const int32_t* multiplier, const int8_t* shift, int8_t* out, int16_t* scratch) {
#if Q8_MVE
  q8_mve_conv(p, in, weights, bias, multiplier, shift, 0, 0, out, (int8_t*)scratch);
  return;
#endif
  conv_impl(p, in, weights, bias, multiplier, shift, out, scratch, 0, 0);
}

void edgecc_q8_conv_add(const edgecc_q8_conv_params* p, const int8_t* in, const int8_t* weights, const int32_t* bias,
                        const int32_t* multiplier, const int8_t* shift, const edgecc_q8_add_params* add,
                        const int8_t* residual, int8_t* out, int16_t* scratch) {
#if Q8_MVE
  q8_mve_conv(p, in, weights, bias, multiplier, shift, add, residual, out, (int8_t*)scratch);
  return;
#endif
  int32_t table[512];
  q8_residual res;
  q8_residual_init(&res, add, p->oh * p->ow * p->oc >= 1024 ? table : 0);
  conv_impl(p, in, weights, bias, multiplier, shift, out, scratch, &res, residual);
}

/* Depthwise: per output pixel, the taps inside the image (range hoisted out of the channel loop), four channels
 * per word with their accumulators in registers (SXTB16 splits the input and weight words into (c0, c2) and
 * (c1, c3), SMLABB / SMLATT multiply them lane by lane), requantized straight into the output. Channel counts
 * that are not a multiple of 4 (unaligned words) take the per-channel loop through scratch. */
void edgecc_q8_depthwise_conv(const edgecc_q8_conv_params* p, const int8_t* in, const int8_t* weights,
                              const int32_t* bias, const int32_t* multiplier, const int8_t* shift, int8_t* out,
                              int32_t* scratch) {
#if Q8_MVE
  q8_mve_depthwise_conv(p, in, weights, bias, multiplier, shift, out);
  return;
#endif
  const int c = p->ic, c4 = (c & 3) == 0 ? c : 0, rowstep = p->iw * c;
  const int32_t zp = p->zp_in, zp2 = (int32_t)(((uint32_t)(uint16_t)zp << 16) | (uint16_t)zp);
  for (int oy = 0; oy < p->oh; oy++) {
    const int iy0 = oy * p->sh - p->ph, ky0 = iy0 < 0 ? -iy0 : 0;
    const int ky1 = p->ih - iy0 < p->kh ? p->ih - iy0 : p->kh;
    for (int ox = 0; ox < p->ow; ox++) {
      const int ix0 = ox * p->sw - p->pw, kx0 = ix0 < 0 ? -ix0 : 0;
      const int kx1 = p->iw - ix0 < p->kw ? p->iw - ix0 : p->kw;
      const int8_t* src0 = in + (iy0 * p->iw + ix0) * c; /* tap (0, 0), maybe outside: only offset from */
      const int full3 = p->kw == 3 && kx0 == 0 && kx1 == 3;
      int8_t* dst = out + (oy * p->ow + ox) * c;
      for (int ch = 0; ch < c4; ch += 4) {
        int32_t a0 = bias[ch], a1 = bias[ch + 1], a2 = bias[ch + 2], a3 = bias[ch + 3];
#define Q8_DW_TAP(k)                                                                                    \
  do {                                                                                                  \
    const int32_t xv = *(const int32_t*)(x + (k) * c), wv = *(const int32_t*)(w + (k) * c);             \
    const int32_t xl = q8_ssub16(q8_sxtb16(xv), zp2), xh = q8_ssub16(q8_sxtb16_ror8(xv), zp2);          \
    const int32_t wl = q8_sxtb16(wv), wh = q8_sxtb16_ror8(wv);                                          \
    a0 = q8_smlabb(xl, wl, a0);                                                                         \
    a2 = q8_smlatt(xl, wl, a2);                                                                         \
    a1 = q8_smlabb(xh, wh, a1);                                                                         \
    a3 = q8_smlatt(xh, wh, a3);                                                                         \
  } while (0)
        for (int ky = ky0; ky < ky1; ky++) {
          const int8_t* x = src0 + ky * rowstep + ch;
          const int8_t* w = weights + ky * p->kw * c + ch;
          if (full3) { /* a 3-wide row inside the image: unrolled */
            Q8_DW_TAP(0);
            Q8_DW_TAP(1);
            Q8_DW_TAP(2);
          } else {
            for (int kx = kx0; kx < kx1; kx++) Q8_DW_TAP(kx);
          }
        }
#undef Q8_DW_TAP
        dst[ch] = q8_store(a0, q8_channel(p, multiplier[ch], shift[ch]));
        dst[ch + 1] = q8_store(a1, q8_channel(p, multiplier[ch + 1], shift[ch + 1]));
        dst[ch + 2] = q8_store(a2, q8_channel(p, multiplier[ch + 2], shift[ch + 2]));
        dst[ch + 3] = q8_store(a3, q8_channel(p, multiplier[ch + 3], shift[ch + 3]));
      }
      if (c4 == c) continue;
      for (int ch = 0; ch < c; ch++) scratch[ch] = bias[ch];
      for (int ky = ky0; ky < ky1; ky++)
        for (int kx = kx0; kx < kx1; kx++) {
          const int8_t* x = src0 + ky * rowstep + kx * c;
          const int8_t* w = weights + (ky * p->kw + kx) * c;
          for (int ch = 0; ch < c; ch++) scratch[ch] += (x[ch] - zp) * w[ch];
        }
      for (int ch = 0; ch < c; ch++) dst[ch] = q8_store(scratch[ch], q8_channel(p, multiplier[ch], shift[ch]));
    }
  }
}

/* TFLite ADD (the arithmetic is q8_add_rows'); out may be a or b. */
void edgecc_q8_add(const edgecc_q8_add_params* p, const int8_t* a, const int8_t* b, int8_t* out, int n) {
#if Q8_MVE
  q8_mve_add(p, a, b, out, n);
  return;
#endif
  int32_t table[512];
  q8_residual res;
  q8_residual_init(&res, p, n >= 1024 ? table : 0);
  q8_add_rows(&res, a, b, out, n);
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
