/* edgecc tensor frames (see edgecc/frame.h) and their two sinks: semihosting files and a polled UART. */
#include "edgecc/frame.h"

#include "edgecc/rt.h"

#ifndef EDGECC_UART_BASE
#define EDGECC_UART_BASE 0x40004000u /* CMSDK APB UART0 on MPS2 */
#endif
#ifndef EDGECC_UART_DATA_OFFSET
#define EDGECC_UART_DATA_OFFSET 0x0
#endif
#ifndef EDGECC_UART_STATUS_OFFSET
#define EDGECC_UART_STATUS_OFFSET 0x4
#endif
/* Either a "ready" bit (set when the transmitter takes a byte: STM32 TXE) or a "full" bit (CMSDK TXFULL). */
#if !defined(EDGECC_UART_TX_READY_MASK) && !defined(EDGECC_UART_TX_FULL_MASK)
#define EDGECC_UART_TX_FULL_MASK 0x1u
#endif
#ifndef EDGECC_UART_CTRL_OFFSET
#define EDGECC_UART_CTRL_OFFSET 0x8 /* CMSDK CTRL: bit 0 TX enable; -1: the vendor HAL enables it */
#endif
#ifndef EDGECC_UART_BAUDDIV_OFFSET
#define EDGECC_UART_BAUDDIV_OFFSET 0x10 /* CMSDK BAUDDIV (>= 16) */
#endif
#ifndef EDGECC_UART_BAUDDIV
#define EDGECC_UART_BAUDDIV 27u /* 25 MHz / 921600 baud */
#endif

#define UART_REG(off) (*(volatile uint32_t*)(EDGECC_UART_BASE + (off)))

static int same(const char* a, const char* b) {
  while (*a && *a == *b) { a++; b++; }
  return *a == *b;
}

int edgecc_dtype_code(const char* dtype) {
  if (same(dtype, "float32")) return EDGECC_DTYPE_FLOAT32;
  if (same(dtype, "int8")) return EDGECC_DTYPE_INT8;
  if (same(dtype, "uint8")) return EDGECC_DTYPE_UINT8;
  if (same(dtype, "int32")) return EDGECC_DTYPE_INT32;
  return 0;
}

uint32_t edgecc_crc32(uint32_t crc, const void* buf, size_t n) {
  /* bitwise, no table: 1 KB of flash saved; the cut tensor is sent once per inference */
  const uint8_t* p = (const uint8_t*)buf;
  crc = ~crc;
  while (n--) {
    crc ^= *p++;
    for (int k = 0; k < 8; k++) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
  }
  return ~crc;
}

static void put_u32(uint8_t* p, uint32_t v) {
  p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); p[2] = (uint8_t)(v >> 16); p[3] = (uint8_t)(v >> 24);
}

int edgecc_frame_write(edgecc_sink_fn sink, void* ctx, int dtype, int ndim, const uint32_t* shape,
                       const void* data, uint32_t payload_bytes) {
  uint8_t head[12 + 4 * 8];
  if (ndim < 0 || ndim > 8 || dtype <= 0) return -1;
  head[0] = 'E'; head[1] = 'D'; head[2] = 'G'; head[3] = 'F';
  head[4] = EDGECC_FRAME_VERSION; head[5] = (uint8_t)dtype; head[6] = (uint8_t)ndim; head[7] = 0;
  put_u32(head + 8, payload_bytes);
  for (int i = 0; i < ndim; i++) put_u32(head + 12 + 4 * i, shape[i]);
  size_t head_bytes = 12 + 4 * (size_t)ndim;
  uint8_t tail[4];
  put_u32(tail, edgecc_crc32(edgecc_crc32(0, head, head_bytes), data, payload_bytes));
  if (sink(ctx, head, head_bytes) != 0 || sink(ctx, data, payload_bytes) != 0) return -2;
  return sink(ctx, tail, sizeof(tail)) != 0 ? -2 : 0;
}

int edgecc_sink_semihost(void* ctx, const void* buf, size_t n) {
  return edgecc_sh_write_file(*(int*)ctx, buf, n) != 0 ? -1 : 0;
}

void edgecc_uart_init(void) {
#if EDGECC_UART_CTRL_OFFSET >= 0
  UART_REG(EDGECC_UART_BAUDDIV_OFFSET) = EDGECC_UART_BAUDDIV;
  UART_REG(EDGECC_UART_CTRL_OFFSET) |= 1u; /* TX enable */
#endif
}

int edgecc_sink_uart(void* ctx, const void* buf, size_t n) {
  (void)ctx;
  const uint8_t* p = (const uint8_t*)buf;
  for (size_t i = 0; i < n; i++) {
#ifdef EDGECC_UART_TX_READY_MASK
    while (!(UART_REG(EDGECC_UART_STATUS_OFFSET) & EDGECC_UART_TX_READY_MASK)) {}
#else
    while (UART_REG(EDGECC_UART_STATUS_OFFSET) & EDGECC_UART_TX_FULL_MASK) {}
#endif
    UART_REG(EDGECC_UART_DATA_OFFSET) = p[i];
  }
  return 0;
}
