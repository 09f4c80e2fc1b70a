/* TVMBackendAllocWorkspace / TVMBackendFreeWorkspace for generated kernels, served LIFO from a window of the
 * model arena that the AOT driver selects before each kernel (the memory plan sized it from the kernel's own
 * scratch requests). No heap: a request that does not fit returns NULL and the kernel returns -1. */
#include <stdint.h>

#include "edgecc/rt.h"

#define EDGECC_WS_ALIGN 16u
#define EDGECC_WS_DEPTH 16

static uint8_t* ws_base;
static size_t ws_size, ws_top, ws_peak;
static size_t ws_stack[EDGECC_WS_DEPTH];
static int ws_depth;

void edgecc_workspace_set(void* base, size_t size) {
  ws_base = (uint8_t*)base;
  ws_size = size;
  ws_top = 0;
  ws_depth = 0;
}

size_t edgecc_workspace_peak(void) { return ws_peak; }

void* TVMBackendAllocWorkspace(int device_type, int device_id, uint64_t nbytes, int dtype_code_hint,
                               int dtype_bits_hint) {
  (void)device_type; (void)device_id; (void)dtype_code_hint; (void)dtype_bits_hint;
  size_t rounded = ((size_t)nbytes + EDGECC_WS_ALIGN - 1u) & ~(size_t)(EDGECC_WS_ALIGN - 1u);
  if (ws_depth == EDGECC_WS_DEPTH || ws_top + rounded > ws_size) return 0;
  ws_stack[ws_depth++] = ws_top;
  void* p = ws_base + ws_top;
  ws_top += rounded;
  if (ws_top > ws_peak) ws_peak = ws_top;
  return p;
}

int TVMBackendFreeWorkspace(int device_type, int device_id, void* ptr) {
  (void)device_type; (void)device_id;
  if (ws_depth == 0 || (uint8_t*)ptr != ws_base + ws_stack[ws_depth - 1]) return -1; /* not LIFO */
  ws_top = ws_stack[--ws_depth];
  return 0;
}

/* LLVM-generated objects reach the allocator through these (weak, overridable) pointers. */
void* (*__TVMBackendAllocWorkspace)(int, int, uint64_t, int, int) __attribute__((weak)) = TVMBackendAllocWorkspace;
int (*__TVMBackendFreeWorkspace)(int, int, void*) __attribute__((weak)) = TVMBackendFreeWorkspace;
