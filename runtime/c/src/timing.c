/* SysTick as a 64-bit tick counter on the processor clock. Under QEMU with -icount shift=0 every instruction
 * advances virtual time by 1 ns, so ticks are instructions scaled by the board's clock (1e9 / f_cpu);
 * edgecc_timer_calibrate measures that scale on a loop of known length instead of trusting a constant. */
#include <stdint.h>

#include "edgecc/rt.h"

#define SYST_CSR (*(volatile uint32_t*)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t*)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t*)0xE000E018u)
#define SYST_RELOAD 0x00FFFFFFu

static volatile uint32_t systick_wraps;

void SysTick_Handler(void) { systick_wraps++; }

void edgecc_timer_start(void) {
  SYST_CSR = 0;
  SYST_RVR = SYST_RELOAD;
  SYST_CVR = 0;
  systick_wraps = 0;
  SYST_CSR = 0x7u; /* enable, interrupt on wrap, processor clock */
  while (SYST_CVR == 0) {
  } /* the counter reads 0 until its first reload */
}

uint64_t edgecc_timer_ticks(void) {
  uint32_t wraps, value;
  do { /* re-read if a wrap happened between the two reads */
    wraps = systick_wraps;
    value = SYST_CVR;
  } while (wraps != systick_wraps);
  return ((uint64_t)wraps << 24) + (SYST_RELOAD - value);
}

uint32_t edgecc_timer_calibrate(void) {
  /* 2 instructions per iteration (subs + bne), 1<<20 iterations */
  const uint32_t iterations = 1u << 20;
  uint32_t n = iterations;
  uint64_t t0 = edgecc_timer_ticks();
  __asm__ volatile(
      "1: subs %0, %0, #1\n"
      "   bne 1b\n"
      : "+r"(n) : : "cc");
  uint64_t ticks = edgecc_timer_ticks() - t0;
  if (ticks == 0) return 0;
  return (uint32_t)(((uint64_t)2u * iterations * 1024u + ticks / 2) / ticks);
}
