/* edgecc bare-metal runtime for Cortex-M: the few services a generated model and its harness need.
 *
 * - semihosting I/O (QEMU, or a debugger with semihosting enabled): console text, host files, exit codes
 * - SysTick timing: a 64-bit tick counter (under QEMU -icount a tick is a fixed number of instructions)
 * - the kernel workspace: TVMBackendAllocWorkspace/FreeWorkspace served from a window of the model arena
 *
 * Nothing here calls malloc or printf; it is safe to link into users' own firmware.
 */
#ifndef EDGECC_RT_H_
#define EDGECC_RT_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- semihosting (ARM semihosting v2 calls, `bkpt 0xAB`) ---- */
void edgecc_sh_write(const char* s);                   /* console text, NUL-terminated */
void edgecc_sh_write_int(long long v);                 /* decimal */
void edgecc_sh_write_float(float v);                   /* %.6e-like, no printf */
int edgecc_sh_open(const char* path, int mode);        /* fopen mode index: 1 "rb", 5 "wb"; -1 on error */
int edgecc_sh_read(int handle, void* buf, size_t n);   /* returns bytes NOT read (semihosting rule) */
int edgecc_sh_write_file(int handle, const void* buf, size_t n);
int edgecc_sh_flen(int handle);
int edgecc_sh_close(int handle);
int edgecc_sh_args(char** argv, int max_args);         /* the command line, split at spaces (in place); argc */
uint32_t edgecc_parse_uint(const char* s);              /* leading decimal digits; 0 when none */
void edgecc_exit(int code) __attribute__((noreturn)); /* ends the QEMU run with this exit code */

/* ---- timing (SysTick, processor clock) ---- */
void edgecc_timer_start(void);
uint64_t edgecc_timer_ticks(void);
/* Instructions per 1024 SysTick ticks, measured on a loop of known length (meaningful under QEMU -icount). */
uint32_t edgecc_timer_calibrate(void);

/* ---- kernel workspace ----
 * Generated kernels ask for scratch with TVMBackendAllocWorkspace. The AOT driver points the allocator at the
 * part of the arena its memory plan reserved for the next kernel; requests are served LIFO from there. */
void edgecc_workspace_set(void* base, size_t size);
size_t edgecc_workspace_peak(void);

#ifdef __cplusplus
}
#endif
#endif /* EDGECC_RT_H_ */
