/* Cortex-M startup: vector table, .data/.bss initialisation, FPU enable, fault reporting.
 * Symbols come from the edgecc linker script (ld/cortex-m.ld.in). */
#include <stdint.h>

#include "edgecc/rt.h"

extern uint32_t __data_load, __data_start, __data_end, __bss_start, __bss_end, __stack_top, __stack_limit;
extern int main(void);
void Reset_Handler(void);
void edgecc_fault_handler(void);
void SysTick_Handler(void);

static void default_handler(void) { edgecc_fault_handler(); }

/* Core exceptions only; a model needs no peripheral interrupt. */
__attribute__((section(".isr_vector"), used)) void (*const edgecc_vectors[16])(void) = {
    (void (*)(void))(&__stack_top), /* initial MSP */
    Reset_Handler,
    default_handler,     /* NMI */
    edgecc_fault_handler, /* HardFault */
    edgecc_fault_handler, /* MemManage */
    edgecc_fault_handler, /* BusFault */
    edgecc_fault_handler, /* UsageFault (also stack overflow on v8-M through MSPLIM) */
    edgecc_fault_handler, /* SecureFault (v8-M) */
    0, 0, 0,
    default_handler,     /* SVC */
    default_handler,     /* DebugMon */
    0,
    default_handler,     /* PendSV */
    SysTick_Handler,
};

#define SCB_CPACR (*(volatile uint32_t*)0xE000ED88u)
#define SCB_SHCSR (*(volatile uint32_t*)0xE000ED24u)
#define SCB_CFSR (*(volatile uint32_t*)0xE000ED28u)
#define SCB_HFSR (*(volatile uint32_t*)0xE000ED2Cu)
#define SCB_ICSR (*(volatile uint32_t*)0xE000ED04u)

void Reset_Handler(void) {
#if defined(__ARM_ARCH_8M_MAIN__) || defined(__ARM_ARCH_8_1M_MAIN__)
  /* v8-M: a stack overflow faults instead of silently corrupting .bss */
  __asm__ volatile("msr msplim, %0" : : "r"(&__stack_limit));
#endif
#if defined(__ARM_FP) || defined(__ARM_FEATURE_MVE)
  SCB_CPACR |= 0xFu << 20; /* CP10/CP11 full access: FPU (and MVE on M55) */
  __asm__ volatile("dsb\n isb");
#endif
  SCB_SHCSR |= (1u << 16) | (1u << 17) | (1u << 18); /* separate MemManage/BusFault/UsageFault */
  for (uint32_t *src = &__data_load, *dst = &__data_start; dst < &__data_end;) *dst++ = *src++;
  for (uint32_t* dst = &__bss_start; dst < &__bss_end;) *dst++ = 0;
  edgecc_exit(main());
}

static void write_hex(uint32_t v) {
  char buf[11] = "0x";
  for (int i = 0; i < 8; i++) buf[2 + i] = "0123456789abcdef"[(v >> (28 - 4 * i)) & 0xFu];
  buf[10] = 0;
  edgecc_sh_write(buf);
}

/* Every fault ends the run with exit code 100 + exception number (103 = HardFault, 106 = UsageFault),
 * after printing the faulting PC and the fault status registers. */
__attribute__((used)) void edgecc_fault_report(uint32_t* frame) {
  uint32_t exc = SCB_ICSR & 0x1FFu;
  edgecc_sh_write("edgecc: fault (exception ");
  edgecc_sh_write_int(exc);
  edgecc_sh_write(") pc=");
  write_hex(frame[6]);
  edgecc_sh_write(" lr=");
  write_hex(frame[5]);
  edgecc_sh_write(" cfsr=");
  write_hex(SCB_CFSR);
  edgecc_sh_write(" hfsr=");
  write_hex(SCB_HFSR);
  edgecc_sh_write("\n");
  edgecc_exit(100 + (int)exc);
}

__attribute__((naked)) void edgecc_fault_handler(void) {
  __asm__ volatile(
      "tst lr, #4\n"
      "ite eq\n"
      "mrseq r0, msp\n"
      "mrsne r0, psp\n"
      "b edgecc_fault_report\n");
}
