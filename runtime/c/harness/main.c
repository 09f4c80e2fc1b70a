/* edgecc test harness: feeds the model an input, runs warm-up + timed inferences, reports output and timing.
 *
 * Command line (semihosting SYS_GET_CMDLINE, e.g. QEMU -semihosting-config arg=...):
 *     [INPUT_FILE|-] [OUTPUT_FILE|-] [WARMUP] [ITERS] [COUNT]
 * INPUT_FILE holds the inputs back to back (raw little-endian, model.h sizes); "-" or no argument uses the
 * reference input compiled into the firmware. COUNT > 1 (with an input file) runs COUNT samples stored one after
 * the other in INPUT_FILE, once each, and writes their outputs one after the other (accuracy runs on target). Output lines start with "edgecc:" and are parsed by
 * edgecc.runtime.runners.qemu_system (the QemuCortexMRunner).
 */
#include <stdint.h>

#include "edgecc/frame.h"
#include "edgecc/rt.h"
#include "model.h"

extern const uint8_t edgecc_reference_input[];

static uint8_t input_buf[EDGECC_MODEL_INPUT_BYTES_TOTAL] __attribute__((aligned(16)));
static uint8_t output_buf[EDGECC_MODEL_OUTPUT_BYTES_TOTAL] __attribute__((aligned(16)));
static const uint32_t input_bytes[EDGECC_MODEL_NUM_INPUTS] = EDGECC_MODEL_INPUT_BYTES;
static const uint32_t output_bytes[EDGECC_MODEL_NUM_OUTPUTS] = EDGECC_MODEL_OUTPUT_BYTES;

#ifdef EDGECC_PROFILE
/* A profiling build: model.c calls edgecc_profile_step(i) after kernel i; the timed run's per-kernel ticks are
 * printed as "edgecc: step I ticks N" (each includes the call's argument packing and ~10 instructions of timer
 * reads, the same for every kernel). */
#define EDGECC_PROFILE_MAX_STEPS 1024
static uint64_t step_ticks[EDGECC_PROFILE_MAX_STEPS];
static int step_count;

void edgecc_profile_step(int step) {
  if (step >= 0 && step < EDGECC_PROFILE_MAX_STEPS) {
    step_ticks[step] = edgecc_timer_ticks();
    if (step + 1 > step_count) step_count = step + 1;
  }
}

static void profile_report(uint64_t t0) {
  uint64_t prev = t0;
  for (int i = 0; i < step_count; i++) {
    edgecc_sh_write("edgecc: step ");
    edgecc_sh_write_int(i);
    edgecc_sh_write(" ticks ");
    edgecc_sh_write_int((long long)(step_ticks[i] - prev));
    edgecc_sh_write("\n");
    prev = step_ticks[i];
  }
}
#endif

static char* argv_[8];

static int is_dash(const char* s) { return s[0] == '-' && s[1] == 0; }

/* The outputs to a sink: raw bytes back to back, or (-DEDGECC_FRAME_OUTPUT, the front of a split model) one tensor
 * frame per output, as a board streams the cut tensor to the next device. */
static int write_outputs(edgecc_sink_fn sink, void* ctx) {
#ifdef EDGECC_FRAME_OUTPUT
  static const uint32_t ndims[EDGECC_MODEL_NUM_OUTPUTS] = EDGECC_MODEL_OUTPUT_NDIMS;
  static const uint32_t shapes[] = EDGECC_MODEL_OUTPUT_SHAPES;
  static const char* const dtypes[EDGECC_MODEL_NUM_OUTPUTS] = EDGECC_MODEL_OUTPUT_DTYPES;
  uint32_t off = 0, dim = 0;
  for (int i = 0; i < EDGECC_MODEL_NUM_OUTPUTS; i++) {
    if (edgecc_frame_write(sink, ctx, edgecc_dtype_code(dtypes[i]), (int)ndims[i], shapes + dim, output_buf + off,
                           output_bytes[i]) != 0)
      return -1;
    off += output_bytes[i];
    dim += ndims[i];
  }
  return 0;
#else
  return sink(ctx, output_buf, sizeof(output_buf));
#endif
}

static void setup_io(void* inputs[], void* outputs[]) {
  uint32_t off = 0;
  for (int i = 0; i < EDGECC_MODEL_NUM_INPUTS; i++) { inputs[i] = input_buf + off; off += input_bytes[i]; }
  off = 0;
  for (int i = 0; i < EDGECC_MODEL_NUM_OUTPUTS; i++) { outputs[i] = output_buf + off; off += output_bytes[i]; }
}

/* COUNT samples from one input file -> their outputs in one output file. */
static int run_samples(const char* in_path, const char* out_path, uint32_t count) {
  void* inputs[EDGECC_MODEL_NUM_INPUTS];
  void* outputs[EDGECC_MODEL_NUM_OUTPUTS];
  setup_io(inputs, outputs);
  int hin = is_dash(in_path) ? -1 : edgecc_sh_open(in_path, 1);
  int hout = is_dash(out_path) ? -1 : edgecc_sh_open(out_path, 5);
  if (hin < 0 || hout < 0) {
    edgecc_sh_write("edgecc: error: sample runs need an input and an output file\n");
    return 2;
  }
  for (uint32_t s = 0; s < count; s++) {
    if (edgecc_sh_read(hin, input_buf, sizeof(input_buf)) != 0) {
      edgecc_sh_write("edgecc: error: input file holds fewer samples than asked\n");
      return 2;
    }
    int rc = EDGECC_MODEL_RUN(inputs, outputs);
    if (rc != 0) {
      edgecc_sh_write("edgecc: error: model returned ");
      edgecc_sh_write_int(rc);
      edgecc_sh_write("\n");
      return 3;
    }
    if (edgecc_sh_write_file(hout, output_buf, sizeof(output_buf)) != 0) {
      edgecc_sh_write("edgecc: error: cannot write output file\n");
      return 4;
    }
  }
  edgecc_sh_close(hin);
  edgecc_sh_close(hout);
  edgecc_sh_write("edgecc: samples ");
  edgecc_sh_write_int(count);
  edgecc_sh_write("\nedgecc: done\n");
  return 0;
}

int main(void) {
  int argc = edgecc_sh_args(argv_, 8);
  int first = 1; /* argv[0] is the program name */
  const char* in_path = argc > first ? argv_[first] : "-";
  const char* out_path = argc > first + 1 ? argv_[first + 1] : "-";
  uint32_t warmup = argc > first + 2 ? edgecc_parse_uint(argv_[first + 2]) : 0;
  uint32_t iters = argc > first + 3 ? edgecc_parse_uint(argv_[first + 3]) : 1;
  if (iters == 0) iters = 1;
  uint32_t count = argc > first + 4 ? edgecc_parse_uint(argv_[first + 4]) : 1;
  if (count > 1) return run_samples(in_path, out_path, count);

  if (is_dash(in_path)) {
    for (uint32_t i = 0; i < sizeof(input_buf); i++) input_buf[i] = edgecc_reference_input[i];
  } else {
    int h = edgecc_sh_open(in_path, 1);
    if (h < 0 || edgecc_sh_read(h, input_buf, sizeof(input_buf)) != 0) {
      edgecc_sh_write("edgecc: error: cannot read input file\n");
      return 2;
    }
    edgecc_sh_close(h);
  }
  void* inputs[EDGECC_MODEL_NUM_INPUTS];
  void* outputs[EDGECC_MODEL_NUM_OUTPUTS];
  setup_io(inputs, outputs);

  edgecc_timer_start();
  edgecc_sh_write("edgecc: model " EDGECC_MODEL_NAME "\n");
  edgecc_sh_write("edgecc: calibration ");
  edgecc_sh_write_int(edgecc_timer_calibrate());
  edgecc_sh_write(" instructions per 1024 ticks\n");
  for (uint32_t i = 0; i < warmup + iters; i++) {
    uint64_t t0 = edgecc_timer_ticks();
    int rc = EDGECC_MODEL_RUN(inputs, outputs);
    uint64_t t1 = edgecc_timer_ticks();
    if (rc != 0) {
      edgecc_sh_write("edgecc: error: model returned ");
      edgecc_sh_write_int(rc);
      edgecc_sh_write("\n");
      return 3;
    }
    edgecc_sh_write(i < warmup ? "edgecc: warmup ticks " : "edgecc: ticks ");
    edgecc_sh_write_int((long long)(t1 - t0));
    edgecc_sh_write("\n");
#ifdef EDGECC_PROFILE
    if (i + 1 == warmup + iters) profile_report(t0);
#endif
  }
  edgecc_sh_write("edgecc: workspace peak ");
  edgecc_sh_write_int((long long)edgecc_workspace_peak());
  edgecc_sh_write(" bytes\n");

  if (!is_dash(out_path)) {
    int h = edgecc_sh_open(out_path, 5);
    if (h < 0 || write_outputs(edgecc_sink_semihost, &h) != 0) {
      edgecc_sh_write("edgecc: error: cannot write output file\n");
      return 4;
    }
    edgecc_sh_close(h);
  }
#ifdef EDGECC_FRAME_UART
  edgecc_uart_init();
  if (write_outputs(edgecc_sink_uart, 0) != 0) {
    edgecc_sh_write("edgecc: error: cannot write the UART frames\n");
    return 4;
  }
  edgecc_sh_write("edgecc: uart frames sent\n");
#endif
  const float* out0 = (const float*)output_buf;
  uint32_t n = output_bytes[0] / 4u;
  edgecc_sh_write("edgecc: output0");
  for (uint32_t i = 0; i < n && i < 16; i++) {
    edgecc_sh_write(" ");
    edgecc_sh_write_float(out0[i]);
  }
  edgecc_sh_write("\nedgecc: done\n");
  return 0;
}
