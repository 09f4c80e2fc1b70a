/* ARM semihosting: the debugger (or QEMU with -semihosting) services `bkpt 0xAB` with r0 = operation,
 * r1 = pointer to the argument block. Used for console text, host files and the exit code. */
#include "edgecc/rt.h"

enum {
  SYS_OPEN = 0x01, SYS_CLOSE = 0x02, SYS_WRITE0 = 0x04, SYS_WRITE = 0x05, SYS_READ = 0x06,
  SYS_FLEN = 0x0C, SYS_GET_CMDLINE = 0x15, SYS_EXIT = 0x18, SYS_EXIT_EXTENDED = 0x20,
};
#define ADP_Stopped_ApplicationExit 0x20026u

static inline int semihost_call(int op, void* arg) {
  register int r0 __asm__("r0") = op;
  register void* r1 __asm__("r1") = arg;
  __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
  return r0;
}

static size_t length(const char* s) {
  size_t n = 0;
  while (s[n]) n++;
  return n;
}

void edgecc_sh_write(const char* s) { semihost_call(SYS_WRITE0, (void*)s); }

void edgecc_sh_write_int(long long v) {
  char buf[24];
  int i = sizeof(buf) - 1;
  unsigned long long u = v < 0 ? -(unsigned long long)v : (unsigned long long)v;
  buf[i] = 0;
  do {
    buf[--i] = (char)('0' + u % 10);
    u /= 10;
  } while (u);
  if (v < 0) buf[--i] = '-';
  edgecc_sh_write(&buf[i]);
}

void edgecc_sh_write_float(float v) {
  /* 7 significant digits in scientific notation; exact enough to read, the binary output file is exact. */
  char buf[20];
  int i = 0, e = 0;
  if (v != v) { edgecc_sh_write("nan"); return; }
  if (v < 0) { buf[i++] = '-'; v = -v; }
  if (v > 3.4e38f) { buf[i] = 0; edgecc_sh_write(buf); edgecc_sh_write("inf"); return; }
  if (v != 0.0f) {
    while (v >= 10.0f) { v /= 10.0f; e++; }
    while (v < 1.0f) { v *= 10.0f; e--; }
  }
  unsigned m = (unsigned)(v * 1000000.0f + 0.5f);
  if (m >= 10000000u) { m /= 10u; e++; }
  char digits[8];
  for (int k = 6; k >= 0; k--) { digits[k] = (char)('0' + m % 10); m /= 10; }
  buf[i++] = digits[0];
  buf[i++] = '.';
  for (int k = 1; k < 7; k++) buf[i++] = digits[k];
  buf[i++] = 'e';
  if (e < 0) { buf[i++] = '-'; e = -e; } else { buf[i++] = '+'; }
  buf[i++] = (char)('0' + e / 10);
  buf[i++] = (char)('0' + e % 10);
  buf[i] = 0;
  edgecc_sh_write(buf);
}

int edgecc_sh_open(const char* path, int mode) {
  uint32_t block[3] = {(uint32_t)path, (uint32_t)mode, (uint32_t)length(path)};
  return semihost_call(SYS_OPEN, block);
}

int edgecc_sh_read(int handle, void* buf, size_t n) {
  uint32_t block[3] = {(uint32_t)handle, (uint32_t)buf, (uint32_t)n};
  return semihost_call(SYS_READ, block);
}

int edgecc_sh_write_file(int handle, const void* buf, size_t n) {
  uint32_t block[3] = {(uint32_t)handle, (uint32_t)buf, (uint32_t)n};
  return semihost_call(SYS_WRITE, block);
}

int edgecc_sh_flen(int handle) {
  uint32_t block[1] = {(uint32_t)handle};
  return semihost_call(SYS_FLEN, block);
}

int edgecc_sh_close(int handle) {
  uint32_t block[1] = {(uint32_t)handle};
  return semihost_call(SYS_CLOSE, block);
}

void edgecc_exit(int code) {
  /* SYS_EXIT_EXTENDED carries the exit status (plain SYS_EXIT only says success/failure on AArch32). */
  uint32_t block[2] = {ADP_Stopped_ApplicationExit, (uint32_t)code};
  semihost_call(SYS_EXIT_EXTENDED, block);
  semihost_call(SYS_EXIT, (void*)(code == 0 ? ADP_Stopped_ApplicationExit : 0x20023u));
  for (;;) __asm__ volatile("wfi");
}

int edgecc_sh_args(char** argv, int max_args) {
  static char cmdline[256];
  uint32_t block[2] = {(uint32_t)cmdline, sizeof(cmdline) - 1};
  if (semihost_call(SYS_GET_CMDLINE, block) != 0) return 0;
  int argc = 0;
  char* p = cmdline;
  while (*p && argc < max_args) {
    while (*p == ' ') *p++ = 0;
    if (!*p) break;
    argv[argc++] = p;
    while (*p && *p != ' ') p++;
  }
  return argc;
}

uint32_t edgecc_parse_uint(const char* s) {
  uint32_t v = 0;
  while (*s >= '0' && *s <= '9') v = v * 10u + (uint32_t)(*s++ - '0');
  return v;
}
