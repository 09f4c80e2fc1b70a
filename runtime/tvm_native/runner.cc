// tvm_runner: run one function of a TVM Relax VM bundle (model.so) on .npy inputs, natively.
//
//   tvm_runner [--bench N WARMUP] MODEL.so FUNC OUT_DIR IN0.npy [IN1.npy ...]
//
// Loads MODEL.so with the TVM runtime (tvm-ffi Module::LoadFromFile), creates the Relax VM the way
// tvm.relax.VirtualMachine.__init__ does (vm_load_executable, then vm_initialization(kDLCPU, 0, pooled)),
// calls FUNC on the inputs and writes each output as OUT_DIR/output_N.npy (OUT_DIR "-" writes nothing).
// With --bench, runs WARMUP untimed calls then N calls each timed with steady_clock and prints
// {"samples_ms":[...]} on stdout.
//
// Built by edgecc (runtime/tvm_native.py) with the aarch64 apache-tvm-ffi headers and linked against the
// apache-tvm wheel's libtvm_runtime.so + libtvm_ffi.so; needs only those two libraries at run time.
// .npy support: C-order, little-endian (or byte-less), dtypes f4 f8 f2 i1 i2 i4 i8 u1 u2 u4 u8 b1.

#include <dlpack/dlpack.h>
#include <tvm/ffi/any.h>
#include <tvm/ffi/container/array.h>
#include <tvm/ffi/container/tensor.h>
#include <tvm/ffi/error.h>
#include <tvm/ffi/extra/module.h>
#include <tvm/ffi/function.h>
#include <tvm/ffi/string.h>

#include <cctype>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace ffi = tvm::ffi;

namespace {

constexpr int kPooledAllocator = 2;  // tvm.relax.VirtualMachine.POOLED_ALLOCATOR

struct CPUAlloc {
  void AllocData(DLTensor* t) {
    size_t size = ffi::GetDataSize(*t);
    void* p = nullptr;
    if (posix_memalign(&p, 64, size == 0 ? 64 : size) != 0) throw std::bad_alloc();
    t->data = p;
  }
  void FreeData(DLTensor* t) { std::free(t->data); }
};

// ---- .npy -------------------------------------------------------------------------------------------

struct DTypeName {
  const char* code;  // numpy kind+size, e.g. "f4"
  DLDataType dl;
};

const DTypeName kDTypes[] = {
    {"f2", {kDLFloat, 16, 1}}, {"f4", {kDLFloat, 32, 1}}, {"f8", {kDLFloat, 64, 1}},
    {"i1", {kDLInt, 8, 1}},    {"i2", {kDLInt, 16, 1}},   {"i4", {kDLInt, 32, 1}},
    {"i8", {kDLInt, 64, 1}},   {"u1", {kDLUInt, 8, 1}},   {"u2", {kDLUInt, 16, 1}},
    {"u4", {kDLUInt, 32, 1}},  {"u8", {kDLUInt, 64, 1}},  {"b1", {kDLBool, 8, 1}},
};

DLDataType DTypeFromDescr(const std::string& descr, const std::string& file) {
  if (descr.size() != 3 || descr[0] == '>')
    throw std::runtime_error(file + ": unsupported .npy dtype '" + descr + "' (need little-endian)");
  std::string code = descr.substr(1);
  for (const auto& d : kDTypes)
    if (code == d.code) return d.dl;
  throw std::runtime_error(file + ": unsupported .npy dtype '" + descr + "'");
}

std::string DescrFromDType(DLDataType t) {
  for (const auto& d : kDTypes)
    if (d.dl.code == t.code && d.dl.bits == t.bits && t.lanes == 1)
      return std::string(t.bits == 8 ? "|" : "<") + d.code;
  throw std::runtime_error("output dtype (code " + std::to_string(t.code) + ", bits " +
                           std::to_string(t.bits) + ", lanes " + std::to_string(t.lanes) +
                           ") has no .npy writer here");
}

// Value of key 'name' in the header dict, as raw text up to the next top-level ',' or '}'.
std::string HeaderField(const std::string& h, const std::string& name, const std::string& file) {
  size_t k = h.find("'" + name + "'");
  if (k == std::string::npos) throw std::runtime_error(file + ": .npy header has no '" + name + "'");
  size_t p = h.find(':', k) + 1;
  while (p < h.size() && h[p] == ' ') ++p;
  size_t e = p;
  if (h[p] == '(') {
    e = h.find(')', p) + 1;
  } else if (h[p] == '\'') {
    e = h.find('\'', p + 1) + 1;
  } else {
    while (e < h.size() && h[e] != ',' && h[e] != '}') ++e;
  }
  return h.substr(p, e - p);
}

ffi::Tensor ReadNpy(const std::string& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + file);
  char magic[8];
  in.read(magic, 8);
  if (!in || std::memcmp(magic, "\x93NUMPY", 6) != 0) throw std::runtime_error(file + ": not a .npy file");
  uint32_t hlen = 0;
  if (magic[6] == 1) {
    unsigned char b[2];
    in.read(reinterpret_cast<char*>(b), 2);
    hlen = b[0] | (b[1] << 8);
  } else {
    unsigned char b[4];
    in.read(reinterpret_cast<char*>(b), 4);
    hlen = b[0] | (b[1] << 8) | (b[2] << 16) | (static_cast<uint32_t>(b[3]) << 24);
  }
  std::string header(hlen, '\0');
  in.read(&header[0], hlen);
  std::string descr = HeaderField(header, "descr", file);
  descr = descr.substr(1, descr.size() - 2);
  if (HeaderField(header, "fortran_order", file) != "False")
    throw std::runtime_error(file + ": Fortran-order .npy not supported (save a C-contiguous array)");
  std::string shape_text = HeaderField(header, "shape", file);
  std::vector<int64_t> shape;
  for (size_t i = 1; i < shape_text.size();) {
    if (std::isdigit(static_cast<unsigned char>(shape_text[i]))) {
      size_t used = 0;
      shape.push_back(std::stoll(shape_text.substr(i), &used));
      i += used;
    } else {
      ++i;
    }
  }
  DLDataType dtype = DTypeFromDescr(descr, file);
  DLDevice cpu{kDLCPU, 0};
  ffi::Tensor t = ffi::Tensor::FromNDAlloc(CPUAlloc(), ffi::ShapeView(shape.data(), shape.size()), dtype, cpu);
  size_t nbytes = ffi::GetDataSize(*t.GetDLTensorPtr());
  in.read(static_cast<char*>(t.data_ptr()), nbytes);
  if (static_cast<size_t>(in.gcount()) != nbytes)
    throw std::runtime_error(file + ": truncated data (" + std::to_string(in.gcount()) + " of " +
                             std::to_string(nbytes) + " bytes)");
  return t;
}

void WriteNpy(const std::string& file, const DLTensor& t) {
  if (t.device.device_type != kDLCPU) throw std::runtime_error("output not on the CPU");
  if (!ffi::IsContiguous(t)) throw std::runtime_error("output not contiguous");
  std::ostringstream h;
  h << "{'descr': '" << DescrFromDType(t.dtype) << "', 'fortran_order': False, 'shape': (";
  for (int i = 0; i < t.ndim; ++i) h << (i ? ", " : "") << t.shape[i];
  if (t.ndim == 1) h << ",";
  h << "), }";
  std::string header = h.str();
  size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header.push_back('\n');
  std::ofstream out(file, std::ios::binary);
  if (!out) throw std::runtime_error("cannot write " + file);
  out.write("\x93NUMPY\x01\x00", 8);
  uint16_t hl = static_cast<uint16_t>(header.size());
  unsigned char b[2] = {static_cast<unsigned char>(hl & 0xff), static_cast<unsigned char>(hl >> 8)};
  out.write(reinterpret_cast<char*>(b), 2);
  out.write(header.data(), header.size());
  int64_t numel = 1;
  for (int i = 0; i < t.ndim; ++i) numel *= t.shape[i];
  out.write(static_cast<const char*>(t.data) + t.byte_offset, ffi::GetDataSize(numel, t.dtype));
  if (!out) throw std::runtime_error("error writing " + file);
}

// Flatten a VM result (a Tensor or a possibly nested tuple of them) into tensors.
void CollectOutputs(const ffi::Any& v, std::vector<ffi::Tensor>* outs) {
  if (auto t = v.try_cast<ffi::Tensor>()) {
    outs->push_back(*t);
    return;
  }
  if (auto arr = v.try_cast<ffi::Array<ffi::Any>>()) {
    for (size_t i = 0; i < arr->size(); ++i) CollectOutputs((*arr)[i], outs);
    return;
  }
  throw std::runtime_error("function returned a " + v.GetTypeKey() + ", not a tensor or tuple of tensors");
}

int Usage() {
  std::fprintf(stderr,
               "usage: tvm_runner [--bench N WARMUP] MODEL.so FUNC OUT_DIR IN0.npy [IN1.npy ...]\n"
               "  writes OUT_DIR/output_<i>.npy (OUT_DIR '-' writes nothing); --bench prints "
               "{\"samples_ms\":[...]}\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  long bench_n = -1, warmup = 0;
  if (!args.empty() && args[0] == "--bench") {
    if (args.size() < 3) return Usage();
    bench_n = std::stol(args[1]);
    warmup = std::stol(args[2]);
    args.erase(args.begin(), args.begin() + 3);
  }
  if (args.size() < 3) return Usage();
  const std::string model = args[0], func_name = args[1], out_dir = args[2];
  try {
    std::vector<ffi::Tensor> inputs;
    for (size_t i = 3; i < args.size(); ++i) inputs.push_back(ReadNpy(args[i]));

    ffi::Module lib = ffi::Module::LoadFromFile(model);
    ffi::Optional<ffi::Function> load_exec = lib->GetFunction("vm_load_executable", true);
    if (!load_exec.has_value())
      throw std::runtime_error(model + " has no vm_load_executable (not a Relax VM executable?)");
    ffi::Module vm = load_exec.value()().cast<ffi::Module>();
    ffi::Function init = vm->GetFunction("vm_initialization", false).value();
    init(static_cast<int>(kDLCPU), 0, kPooledAllocator);
    ffi::Optional<ffi::Function> found = vm->GetFunction(func_name, false);
    if (!found.has_value()) throw std::runtime_error("the VM has no function '" + func_name + "'");
    ffi::Function fn = found.value();

    std::vector<ffi::AnyView> call_args(inputs.begin(), inputs.end());
    auto call = [&]() {
      ffi::Any ret;
      fn.CallPacked(call_args.data(), static_cast<int32_t>(call_args.size()), &ret);
      return ret;
    };

    ffi::Any result;
    if (bench_n >= 0) {
      for (long i = 0; i < warmup; ++i) result = call();
      std::vector<double> samples;
      for (long i = 0; i < bench_n; ++i) {
        auto t0 = std::chrono::steady_clock::now();
        result = call();
        auto t1 = std::chrono::steady_clock::now();
        samples.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
      }
      if (bench_n == 0) result = call();
      std::ostringstream js;
      js.precision(9);
      js << "{\"samples_ms\":[";
      for (size_t i = 0; i < samples.size(); ++i) js << (i ? "," : "") << samples[i];
      js << "],\"warmup\":" << warmup << ",\"iterations\":" << bench_n << "}";
      std::cout << js.str() << std::endl;
    } else {
      result = call();
    }

    if (out_dir != "-") {
      std::vector<ffi::Tensor> outs;
      CollectOutputs(result, &outs);
      for (size_t i = 0; i < outs.size(); ++i)
        WriteNpy(out_dir + "/output_" + std::to_string(i) + ".npy", *outs[i].GetDLTensorPtr());
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tvm_runner: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
