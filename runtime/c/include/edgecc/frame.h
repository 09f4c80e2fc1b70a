/* edgecc tensor frames: one tensor as a self-describing byte stream, for the cut tensor of a split model.
 *
 * Layout (little-endian), read by edgecc.runtime.frame:
 *     "EDGF"  u8 version (1)  u8 dtype  u8 ndim  u8 0  u32 payload_bytes  u32 shape[ndim]  payload  u32 crc32
 * crc32 is the IEEE 802.3 CRC (zlib.crc32) of every byte before it. A reader scans for "EDGF", so bytes a board
 * prints before the frame (boot messages) are skipped.
 *
 * Sinks: semihosting files (QEMU, a debugger) and a polled UART transmitter (no interrupts, no DMA).
 */
#ifndef EDGECC_FRAME_H_
#define EDGECC_FRAME_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define EDGECC_FRAME_VERSION 1
enum { EDGECC_DTYPE_FLOAT32 = 1, EDGECC_DTYPE_INT8 = 2, EDGECC_DTYPE_UINT8 = 3, EDGECC_DTYPE_INT32 = 4 };

/* Writes n bytes somewhere; returns 0 on success. */
typedef int (*edgecc_sink_fn)(void* ctx, const void* buf, size_t n);

/* "float32" -> EDGECC_DTYPE_FLOAT32 (the strings model.h's <MODEL>_OUTPUT<i>_DTYPE uses); 0 if unknown. */
int edgecc_dtype_code(const char* dtype);

/* One frame of the tensor `data` (payload_bytes bytes, shape[ndim]) to the sink; returns 0 on success. */
int edgecc_frame_write(edgecc_sink_fn sink, void* ctx, int dtype, int ndim, const uint32_t* shape,
                       const void* data, uint32_t payload_bytes);

uint32_t edgecc_crc32(uint32_t crc, const void* buf, size_t n); /* start with crc = 0 */

/* Sinks. ctx of the semihosting sink: a pointer to the handle edgecc_sh_open returned. The UART sink ignores ctx. */
int edgecc_sink_semihost(void* ctx, const void* buf, size_t n);
int edgecc_sink_uart(void* ctx, const void* buf, size_t n);

/* The UART: a transmit data register and a status register polled until the transmitter takes a byte.
 * Defaults: the Arm CMSDK APB UART (MPS2/MPS3 boards, QEMU mps2-*: UART0 at 0x40004000, TXFULL = bit 0 of STATE).
 * An STM32 USART/LPUART: -DEDGECC_UART_BASE=0x40008000 -DEDGECC_UART_DATA_OFFSET=0x28
 * -DEDGECC_UART_STATUS_OFFSET=0x1C -DEDGECC_UART_TX_READY_MASK=0x80 -DEDGECC_UART_CTRL_OFFSET=-1 (the vendor HAL
 * sets the baud rate and enables the transmitter before edgecc_uart_init). */
void edgecc_uart_init(void);

#ifdef __cplusplus
}
#endif
#endif /* EDGECC_FRAME_H_ */
