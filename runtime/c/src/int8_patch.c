/* Window helpers of the patch-based stages (see include/edgecc/int8_patch.h). */
#include "edgecc/int8_patch.h"

#include <stdint.h>
#include <string.h>

/* edgecc_q8_quantize's rounding (int8_kernels.c: round_half_away, then clamp), kept identical: the patched and
 * the plain quantization of a pixel must be the same int8 value */
static inline int32_t q8_quantize_one(float v, float scale, int32_t zp) {
  v = v / scale;
  if (v > 512.0f) v = 512.0f;
  if (v < -512.0f) v = -512.0f;
  int32_t q = (v >= 0.0f ? (int32_t)(v + 0.5f) : (int32_t)(v - 0.5f)) + zp;
  return q < -128 ? -128 : (q > 127 ? 127 : q);
}

void edgecc_q8_quantize_window(const float* x, int c, int h, int w, const edgecc_q8_window* win, float scale,
                               int32_t zp, int8_t* patch) {
  for (int ch = 0; ch < c; ch++) {
    const float* plane = x + ch * h * w + win->y0 * w + win->x0;
    for (int y = 0; y < win->h; y++)
      for (int xx = 0; xx < win->w; xx++)
        patch[(y * win->w + xx) * c + ch] = (int8_t)q8_quantize_one(plane[y * w + xx], scale, zp);
  }
}

void edgecc_q8_store_window(const int8_t* patch, const edgecc_q8_window* win, int c, int w, int8_t* full) {
  const int row = win->w * c;
  for (int y = 0; y < win->h; y++) memcpy(full + ((win->y0 + y) * w + win->x0) * c, patch + y * row, row);
}

void edgecc_q8_add_windowed(const edgecc_q8_add_params* p, const edgecc_q8_add_window* win, const int8_t* a,
                            const int8_t* b, int8_t* out, int c) {
  const int row = win->cols * c;
  a += win->a_offset;
  b += win->b_offset;
  if (win->a_pitch == row && win->b_pitch == row) { /* contiguous: one call (and its tabulated rescales) */
    edgecc_q8_add(p, a, b, out, row * win->rows);
    return;
  }
  for (int y = 0; y < win->rows; y++) edgecc_q8_add(p, a + y * win->a_pitch, b + y * win->b_pitch, out + y * row, row);
}
