/* Patch-based execution of a network's first stages (MCUNetV2): the helpers around edgecc's int8 kernels that
 * move a spatial window between a full tensor and a patch-sized buffer. Every kernel itself (conv, depthwise,
 * add, max pool) runs unchanged on the patch: its image is the patch, and its padding is the patch's offset in
 * the full tensor (negative where the patch holds more rows or columns than this op reads), so a position
 * outside the image is padding exactly where the full-size run has padding.
 * Generated code: edgecc.compiler.micro.patch_emit. Tensors are int8 NHWC, windows in full-tensor pixels. */
#ifndef EDGECC_INT8_PATCH_H_
#define EDGECC_INT8_PATCH_H_

#include <stdint.h>

#include "edgecc/int8.h"

#ifdef __cplusplus
extern "C" {
#endif

/* rows y0 .. y0 + h - 1, columns x0 .. x0 + w - 1 of a tensor */
typedef struct {
  int16_t y0, x0, h, w;
} edgecc_q8_window;

/* The window `win` of a float NCHW (c x h x w) input, quantized (as edgecc_q8_quantize) into a win->h x win->w x c
 * int8 NHWC patch. */
void edgecc_q8_quantize_window(const float* x, int c, int h, int w, const edgecc_q8_window* win, float scale,
                               int32_t zp, int8_t* patch);

/* A win->h x win->w x c patch written into window `win` of a full NHWC tensor `w` pixels wide. */
void edgecc_q8_store_window(const int8_t* patch, const edgecc_q8_window* win, int c, int w, int8_t* full);

/* An add whose inputs are larger patches than its output: each input's first element (byte offset) and row pitch
 * (bytes) for the rows x cols output patch. */
typedef struct {
  int32_t a_offset, a_pitch, b_offset, b_pitch;
  int16_t rows, cols;
} edgecc_q8_add_window;
void edgecc_q8_add_windowed(const edgecc_q8_add_params* p, const edgecc_q8_add_window* win, const int8_t* a,
                            const int8_t* b, int8_t* out, int c);

#ifdef __cplusplus
}
#endif
#endif /* EDGECC_INT8_PATCH_H_ */
