/* edgecc cascade harness: one firmware, two models, one arena. For each sample the little model runs; its
 * confidence (edgecc_cascade_score) decides whether its answer stands or the big model runs on the same input.
 *
 * Command line (semihosting SYS_GET_CMDLINE): [INPUT_FILE|-] [OUTPUT_FILE|-] [COUNT] [cascade|little|big]
 * INPUT_FILE holds COUNT samples back to back ("-": the reference input compiled in, once); OUTPUT_FILE gets the
 * answering model's output per sample. `little` / `big` run that model alone (each model's own cost, measured in
 * this same firmware); `cascade` (the default) applies the policy. Per sample it prints
 *     edgecc: sample I little|big ticks T score S
 * (ticks: SysTick around little + policy + big, instructions under QEMU -icount; see the calibration line).
 * Parsed by edgecc.runtime.runners.qemu_cascade.
 */
#include <stdint.h>

#include "cascade_config.h" /* generated: the two models' headers, run functions, sizes, policy, threshold */
#include "edgecc/cascade.h"
#include "edgecc/rt.h"

extern const uint8_t edgecc_reference_input[];

/* The one arena both models' AOT drivers use (their model.c compiled with -DEDGECC_SHARED_ARENA): they never run
 * at once, so it is sized for the larger, not the sum. */
uint8_t edgecc_cascade_arena[EDGECC_CASCADE_ARENA_BYTES] __attribute__((aligned(16), section(".bss.edgecc_arena")));

static uint8_t input_buf[EDGECC_CASCADE_INPUT_BYTES] __attribute__((aligned(16)));
static float little_out[EDGECC_CASCADE_CLASSES] __attribute__((aligned(16)));
static float big_out[EDGECC_CASCADE_CLASSES] __attribute__((aligned(16)));

static char* argv_[8];

static int is_dash(const char* s) { return s[0] == '-' && s[1] == 0; }

static int fail(const char* what, int rc, int code) {
  edgecc_sh_write(what);
  edgecc_sh_write_int(rc);
  edgecc_sh_write("\n");
  return code;
}

/* One sample through the cascade: returns the answering model's output, *big = 1 if the big model answered. */
enum { CASCADE, LITTLE_ONLY, BIG_ONLY };

static const float* cascade_run(int mode, int* big, float* score, int* rc) {
  void* in[1] = {input_buf};
  void* out_l[1] = {little_out};
  void* out_b[1] = {big_out};
  *big = 0;
  if (mode != BIG_ONLY) {
    if ((*rc = EDGECC_CASCADE_LITTLE_RUN(in, out_l)) != 0) return 0;
    if (mode == LITTLE_ONLY) return little_out;
  }
  if (mode == CASCADE) {
    *score = edgecc_cascade_score(little_out, EDGECC_CASCADE_CLASSES, EDGECC_CASCADE_POLICY);
    if (*score >= EDGECC_CASCADE_THRESHOLD) return little_out;
  }
  *big = 1;
  if ((*rc = EDGECC_CASCADE_BIG_RUN(in, out_b)) != 0) return 0;
  return big_out;
}

int main(void) {
  int argc = edgecc_sh_args(argv_, 8);
  const char* in_path = argc > 1 ? argv_[1] : "-";
  const char* out_path = argc > 2 ? argv_[2] : "-";
  uint32_t count = argc > 3 ? edgecc_parse_uint(argv_[3]) : 1;
  if (count == 0) count = 1;
  const char* m = argc > 4 ? argv_[4] : "cascade";
  int mode = m[0] == 'l' ? LITTLE_ONLY : m[0] == 'b' ? BIG_ONLY : CASCADE;
  int hin = -1, hout = -1;
  if (!is_dash(in_path) && (hin = edgecc_sh_open(in_path, 1)) < 0) {
    edgecc_sh_write("edgecc: error: cannot open the input file\n");
    return 2;
  }
  if (!is_dash(out_path) && (hout = edgecc_sh_open(out_path, 5)) < 0) {
    edgecc_sh_write("edgecc: error: cannot open the output file\n");
    return 4;
  }
  if (hin < 0) count = 1;

  edgecc_timer_start();
  edgecc_sh_write("edgecc: model " EDGECC_CASCADE_NAME "\n");
  edgecc_sh_write("edgecc: calibration ");
  edgecc_sh_write_int(edgecc_timer_calibrate());
  edgecc_sh_write(" instructions per 1024 ticks\n");
  for (uint32_t s = 0; s < count; s++) {
    if (hin < 0) {
      for (uint32_t i = 0; i < sizeof(input_buf); i++) input_buf[i] = edgecc_reference_input[i];
    } else if (edgecc_sh_read(hin, input_buf, sizeof(input_buf)) != 0) {
      return fail("edgecc: error: input file holds fewer samples than asked, at ", (int)s, 2);
    }
    int big, rc;
    float score = 0.0f;
    uint64_t t0 = edgecc_timer_ticks();
    const float* answer = cascade_run(mode, &big, &score, &rc);
    uint64_t t1 = edgecc_timer_ticks();
    if (!answer) return fail(big ? "edgecc: error: big model returned " : "edgecc: error: little model returned ", rc,
                             3);
    if (hout >= 0 && edgecc_sh_write_file(hout, answer, sizeof(little_out)) != 0)
      return fail("edgecc: error: cannot write output file at sample ", (int)s, 4);
    edgecc_sh_write("edgecc: sample ");
    edgecc_sh_write_int(s);
    edgecc_sh_write(big ? " big ticks " : " little ticks ");
    edgecc_sh_write_int((long long)(t1 - t0));
    edgecc_sh_write(" score ");
    edgecc_sh_write_float(score);
    edgecc_sh_write("\n");
  }
  if (hin >= 0) edgecc_sh_close(hin);
  if (hout >= 0) edgecc_sh_close(hout);
  edgecc_sh_write("edgecc: done\n");
  return 0;
}
