// tessera-gemm-bench: should the CUDA executor pick cuBLASLt algorithms itself instead of calling
// cublasGemmEx(..., CUBLAS_GEMM_DEFAULT)? For each Llama-3.1-8B projection and batch size it times the executor's call
// exactly as made in CudaExecutor::Impl::gemm (y[rows,out] = x[rows,in] · w[out,in]^T, BF16, FP32 compute, 32 MiB
// workspace, non-blocking stream) and every algorithm cuBLASLt's heuristic returns for the same layout and workspace.
// Prints one JSON line per case and one "step_gemm" line per batch size (the decode step's GEMM time: 32 layers of
// QKV/O/gate_up/down + lm_head).
//
// Timing: L2 (50 MB on the H100) must not hold the weight between launches, so each case allocates enough copies of
// the weight that they total at least --rotate-mb (default 200 MB) and launches cycle through them; one timed repeat
// is max(copies, 8) back-to-back launches between two CUDA events (the launch gap before the first one is amortized,
// as in a real step), and the reported time per launch is the median over repeats of repeat time / launches. The
// activation x is one buffer (in a real step it was just written, so it is L2-warm there too).
//
// Checks: the cublasGemmEx result against host dot products at 64 sampled points (the run stops if it is off), every
// cuBLASLt result against the cublasGemmEx one (max |diff| / max |value|; they differ only by summation order and BF16
// rounding). An algorithm that fails to launch is skipped (null in lt_ms); one that differs by more than 1e-2 is
// counted in num_wrong and is never "first" or "best" (lt_first_ms is then null). The executor takes its own few-row
// kernel at rows <= 8, so the default batch sizes start at 16.
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "core/common/error.hpp"
#include "core/cuda/cublaslt_handles.hpp"
#include "core/cuda/cuda_check.hpp"

namespace {

using tessera::Error;
using tessera::cuda::check;
using tessera::cuda::DeviceMemory;
using tessera::cuda::PinnedMemory;

constexpr size_t kWorkspaceBytes = size_t{32} << 20;  // the executor's cuBLAS workspace
constexpr int kMinLaunchesPerRepeat = 8;
constexpr double kWrongRelDiff = 1e-2;  // beyond BF16 output rounding (2^-8): a wrong result, not summation order
constexpr int kLayers = 32;

struct Shape {
  std::string name;
  int64_t in = 0, out = 0;
  int layers = 1;        // how often the GEMM runs per decode step
  bool f32_out = false;  // lm_head: the executor asks for FP32 logits
};

const std::vector<Shape>& llama8b_shapes() {
  static const std::vector<Shape> shapes = {{"qkv", 4096, 6144, kLayers, false},
                                            {"o", 4096, 4096, kLayers, false},
                                            {"gate_up", 4096, 28672, kLayers, false},
                                            {"down", 14336, 4096, kLayers, false},
                                            {"lm_head", 4096, 128256, 1, true}};
  return shapes;
}

struct Options {
  std::vector<int64_t> rows = {16, 64, 128, 256, 512, 2048};
  std::vector<std::string> shapes;  // empty: all
  int algos = 16, warmup = 3, repeat = 15, device = 0;
  double rotate_mb = 200;
};

using tessera::cuda::LtHandle;
using MatmulDesc = tessera::cuda::LtMatmulDesc;
using Layout = tessera::cuda::LtLayout;
using Preference = tessera::cuda::LtPreference;

struct Context {
  const Options& options;
  cudaStream_t stream = nullptr;
  cublasHandle_t cublas = nullptr;
  LtHandle lt;
  DeviceMemory workspace;
  cudaEvent_t start = nullptr, stop = nullptr;
  std::vector<uint16_t> weight_host, activation_host;  // BF16 bits; element i of a filled buffer is pattern[i % size]
  DeviceMemory weight_pattern, activation_pattern;
  std::string device_name;

  explicit Context(const Options& o) : options(o) {
    int devices = 0;
    if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) throw Error("no CUDA device is available");
    if (o.device < 0 || o.device >= devices) throw Error("CUDA device " + std::to_string(o.device) + " does not exist");
    check(cudaSetDevice(o.device), "cudaSetDevice");
    cudaDeviceProp prop{};
    check(cudaGetDeviceProperties(&prop, o.device), "device properties");
    device_name = prop.name;
    check(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "cudaStreamCreate");
    check(cublasCreate(&cublas), "cublasCreate");
    check(cublasSetStream(cublas, stream), "cublasSetStream");
    workspace = DeviceMemory(kWorkspaceBytes, "cuBLAS workspace");
    check(cublasSetWorkspace(cublas, workspace.get(), kWorkspaceBytes), "cublasSetWorkspace");
    cublasLtHandle_t h = nullptr;
    check(cublasLtCreate(&h), "cublasLtCreate");
    lt.reset(h);
    check(cudaEventCreate(&start), "cudaEventCreate");
    check(cudaEventCreate(&stop), "cudaEventCreate");
    // Pattern lengths are primes, so no weight row or activation row repeats another.
    weight_host = random_bf16(1'000'003, 1);
    activation_host = random_bf16(999'983, 2);
    weight_pattern = upload(weight_host);
    activation_pattern = upload(activation_host);
  }
  ~Context() {
    cudaEventDestroy(start);
    cudaEventDestroy(stop);
    cublasDestroy(cublas);
    cudaStreamDestroy(stream);
  }
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  // Random non-zero BF16 values in ±[0.05, 1].
  static std::vector<uint16_t> random_bf16(size_t elements, uint32_t seed) {
    std::vector<uint16_t> host(elements);
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> magnitude(0.05f, 1.0f);
    for (auto& v : host) {
      const float f = (rng() & 1 ? -1.0f : 1.0f) * magnitude(rng);
      v = static_cast<uint16_t>(std::bit_cast<uint32_t>(f) >> 16);  // truncation: still non-zero
    }
    return host;
  }
  static DeviceMemory upload(const std::vector<uint16_t>& host) {
    DeviceMemory d(host.size() * 2, "pattern");
    check(cudaMemcpy(d.get(), host.data(), host.size() * 2, cudaMemcpyHostToDevice), "pattern upload");
    return d;
  }

  // Fills `bytes` of `dst` with the repeated pattern by doubling device-to-device copies.
  void fill(void* dst, size_t bytes, const DeviceMemory& pattern) const {
    auto* d = static_cast<char*>(dst);
    size_t filled = std::min(bytes, pattern.bytes());
    check(cudaMemcpyAsync(d, pattern.get(), filled, cudaMemcpyDeviceToDevice, stream), "fill");
    while (filled < bytes) {
      const size_t n = std::min(filled, bytes - filled);
      check(cudaMemcpyAsync(d + filled, d, n, cudaMemcpyDeviceToDevice, stream), "fill");
      filled += n;
    }
  }

  // Median over repeats of (time of `launches` back-to-back enqueue(i) calls) / launches, in ms.
  template <class F>
  double median_ms_per_launch(F&& enqueue, int launches) const {
    auto run = [&] {
      for (int i = 0; i < launches; ++i) enqueue(i);
    };
    for (int i = 0; i < options.warmup; ++i) run();
    std::vector<double> times;
    for (int r = 0; r < options.repeat; ++r) {
      check(cudaEventRecord(start, stream), "cudaEventRecord");
      run();
      check(cudaEventRecord(stop, stream), "cudaEventRecord");
      check(cudaEventSynchronize(stop), "GEMM launches");
      float ms = 0;
      check(cudaEventElapsedTime(&ms, start, stop), "cudaEventElapsedTime");
      times.push_back(double(ms) / launches);
    }
    std::sort(times.begin(), times.end());
    return times[times.size() / 2];
  }
};

float bf16_to_float(uint16_t bits) { return std::bit_cast<float>(uint32_t{bits} << 16); }

// The device output as floats (BF16 widened exactly).
void download(const Context& ctx, const DeviceMemory& y, bool f32, PinnedMemory& host, std::vector<float>& out) {
  check(cudaMemcpyAsync(host.get(), y.get(), y.bytes(), cudaMemcpyDeviceToHost, ctx.stream), "download");
  check(cudaStreamSynchronize(ctx.stream), "download");
  const size_t n = y.bytes() / (f32 ? 4 : 2);
  out.resize(n);
  if (f32) {
    std::copy_n(host.get<float>(), n, out.data());
  } else {
    const uint16_t* h = host.get<uint16_t>();
    for (size_t i = 0; i < n; ++i) out[i] = bf16_to_float(h[i]);
  }
}

// max |a - b| / max |reference|; NaN when b holds a NaN (an algorithm that wrote nothing leaves the NaN fill).
double relative_diff(const std::vector<float>& reference, const std::vector<float>& b) {
  double max_ref = 0, max_diff = 0;
  for (size_t i = 0; i < reference.size(); ++i) {
    max_ref = std::max(max_ref, double(std::fabs(reference[i])));
    const double d = std::fabs(double(reference[i]) - double(b[i]));
    if (std::isnan(d)) return NAN;
    max_diff = std::max(max_diff, d);
  }
  return max_ref > 0 ? max_diff / max_ref : max_diff;
}

// The default result against a host dot product in double at 64 sampled (row, column) points: max |diff| / max
// |reference| there. Catches a layout both cuBLAS paths would share.
double spot_check(const Context& ctx, const std::vector<float>& y, int64_t rows, int64_t in, int64_t out) {
  std::mt19937_64 rng(7);
  double max_ref = 0, max_diff = 0;
  for (int s = 0; s < 64; ++s) {
    const int64_t r = int64_t(rng() % uint64_t(rows)), c = int64_t(rng() % uint64_t(out));
    double dot = 0;
    for (int64_t k = 0; k < in; ++k) {
      const size_t xi = size_t(r * in + k), wi = size_t(c * in + k);
      dot += double(bf16_to_float(ctx.activation_host[xi % ctx.activation_host.size()])) *
             double(bf16_to_float(ctx.weight_host[wi % ctx.weight_host.size()]));
    }
    max_ref = std::max(max_ref, std::fabs(dot));
    max_diff = std::max(max_diff, std::fabs(dot - double(y[size_t(r * out + c)])));
  }
  return max_ref > 0 ? max_diff / max_ref : max_diff;
}

nlohmann::json or_null(std::optional<double> v) { return v ? nlohmann::json(*v) : nlohmann::json(nullptr); }

struct CaseResult {
  double default_ms = 0;
  std::optional<double> lt_first_ms, lt_best_ms;
};

CaseResult run_case(Context& ctx, const Shape& shape, int64_t rows) {
  const Options& o = ctx.options;
  const size_t weight_bytes = size_t(shape.in) * shape.out * 2;
  const size_t out_elem = shape.f32_out ? 4 : 2;
  const int copies = std::max<int>(1, int(std::ceil(o.rotate_mb * 1e6 / double(weight_bytes))));
  const int launches = std::max(copies, kMinLaunchesPerRepeat);
  std::vector<DeviceMemory> w;
  for (int i = 0; i < copies; ++i) {
    w.emplace_back(weight_bytes, "weight copy");
    ctx.fill(w.back().get(), weight_bytes, ctx.weight_pattern);
  }
  DeviceMemory x(size_t(rows) * shape.in * 2, "activation");
  ctx.fill(x.get(), x.bytes(), ctx.activation_pattern);
  DeviceMemory y_default(size_t(rows) * shape.out * out_elem, "default output");
  DeviceMemory y_lt(y_default.bytes(), "cuBLASLt output");
  const cudaDataType_t y_type = shape.f32_out ? CUDA_R_32F : CUDA_R_16BF;
  const int m = int(shape.out), n = int(rows), k = int(shape.in);
  const float alpha = 1.0f, beta = 0.0f;

  // 1. The executor's call (column-major: w^T (out x in) times x^T (in x rows)).
  CaseResult result;
  result.default_ms = ctx.median_ms_per_launch(
      [&](int i) {
        check(cublasGemmEx(ctx.cublas, CUBLAS_OP_T, CUBLAS_OP_N, m, n, k, &alpha, w[i % copies].get(), CUDA_R_16BF, k,
                           x.get(), CUDA_R_16BF, k, &beta, y_default.get(), y_type, m, CUBLAS_COMPUTE_32F,
                           CUBLAS_GEMM_DEFAULT),
              "cublasGemmEx");
      },
      launches);
  PinnedMemory host(y_default.bytes(), "host output");
  std::vector<float> reference, candidate;
  download(ctx, y_default, shape.f32_out, host, reference);
  const double default_spot_diff = spot_check(ctx, reference, rows, shape.in, shape.out);
  if (!(default_spot_diff <= kWrongRelDiff)) {
    throw Error("cublasGemmEx result of " + shape.name + " at " + std::to_string(rows) +
                " rows does not match the host dot products (relative difference " + std::to_string(default_spot_diff) +
                "): the layout is wrong");
  }

  // 2. cuBLASLt, same layout and workspace, every heuristic result.
  cublasLtMatmulDesc_t desc_raw = nullptr;
  check(cublasLtMatmulDescCreate(&desc_raw, CUBLAS_COMPUTE_32F, CUDA_R_32F), "cublasLtMatmulDescCreate");
  MatmulDesc desc(desc_raw);
  const cublasOperation_t op_t = CUBLAS_OP_T, op_n = CUBLAS_OP_N;
  check(cublasLtMatmulDescSetAttribute(desc.get(), CUBLASLT_MATMUL_DESC_TRANSA, &op_t, sizeof(op_t)), "TRANSA");
  check(cublasLtMatmulDescSetAttribute(desc.get(), CUBLASLT_MATMUL_DESC_TRANSB, &op_n, sizeof(op_n)), "TRANSB");
  auto layout = [](cudaDataType_t type, int r, int c, int ld) {
    cublasLtMatrixLayout_t l = nullptr;
    check(cublasLtMatrixLayoutCreate(&l, type, uint64_t(r), uint64_t(c), int64_t(ld)), "cublasLtMatrixLayoutCreate");
    return Layout(l);
  };
  const Layout a_layout = layout(CUDA_R_16BF, k, m, k);  // w as stored: in x out, column-major
  const Layout b_layout = layout(CUDA_R_16BF, k, n, k);  // x: in x rows
  const Layout d_layout = layout(y_type, m, n, m);       // y: out x rows
  cublasLtMatmulPreference_t pref_raw = nullptr;
  check(cublasLtMatmulPreferenceCreate(&pref_raw), "cublasLtMatmulPreferenceCreate");
  Preference pref(pref_raw);
  const uint64_t max_workspace = kWorkspaceBytes;
  check(cublasLtMatmulPreferenceSetAttribute(pref.get(), CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &max_workspace,
                                             sizeof(max_workspace)),
        "MAX_WORKSPACE_BYTES");
  std::vector<cublasLtMatmulHeuristicResult_t> heuristics(size_t(o.algos));
  int returned = 0;
  check(cublasLtMatmulAlgoGetHeuristic(ctx.lt.get(), desc.get(), a_layout.get(), b_layout.get(), d_layout.get(),
                                       d_layout.get(), pref.get(), o.algos, heuristics.data(), &returned),
        "cublasLtMatmulAlgoGetHeuristic");

  nlohmann::json lt_ms = nlohmann::json::array(), lt_diff = nlohmann::json::array();
  int best = -1, wrong = 0;
  for (int a = 0; a < returned; ++a) {
    const cublasLtMatmulHeuristicResult_t& h = heuristics[size_t(a)];
    auto launch = [&](int i) {
      return cublasLtMatmul(ctx.lt.get(), desc.get(), &alpha, w[i % copies].get(), a_layout.get(), x.get(),
                            b_layout.get(), &beta, y_lt.get(), d_layout.get(), y_lt.get(), d_layout.get(), &h.algo,
                            ctx.workspace.get(), kWorkspaceBytes, ctx.stream);
    };
    check(cudaMemsetAsync(y_lt.get(), 0xff, y_lt.bytes(), ctx.stream), "NaN fill");  // stale results can't pass
    if (h.state != CUBLAS_STATUS_SUCCESS || launch(0) != CUBLAS_STATUS_SUCCESS) {  // unusable here: skipped
      lt_ms.push_back(nullptr);
      lt_diff.push_back(nullptr);
      continue;
    }
    const double ms = ctx.median_ms_per_launch([&](int i) { check(launch(i), "cublasLtMatmul"); }, launches);
    download(ctx, y_lt, shape.f32_out, host, candidate);
    const double diff = relative_diff(reference, candidate);
    lt_ms.push_back(ms);
    lt_diff.push_back(std::isnan(diff) ? nlohmann::json("nan") : nlohmann::json(diff));
    if (!(diff <= kWrongRelDiff)) {  // a wrong result is never "best" (NaN included)
      ++wrong;
      continue;
    }
    if (a == 0) result.lt_first_ms = ms;
    if (best < 0 || ms < lt_ms[size_t(best)].get<double>()) best = a;
  }
  if (best >= 0) result.lt_best_ms = lt_ms[size_t(best)].get<double>();

  const double flop = 2.0 * double(rows) * double(shape.in) * double(shape.out);
  auto tera_per_s = [](double amount, std::optional<double> ms) {
    return ms ? nlohmann::json(amount / (*ms * 1e-3) / 1e12) : nlohmann::json(nullptr);
  };
  auto index_or_null = [](int i) { return i >= 0 ? nlohmann::json(i) : nlohmann::json(nullptr); };
  nlohmann::json line = {
      {"shape", shape.name},
      {"rows", rows},
      {"in", shape.in},
      {"out", shape.out},
      {"output_dtype", shape.f32_out ? "f32" : "bf16"},
      {"device", ctx.device_name},
      {"weight_copies", copies},
      {"launches_per_repeat", launches},
      {"default_ms", result.default_ms},
      {"default_tflops", tera_per_s(flop, result.default_ms)},
      {"default_weight_tbps", tera_per_s(double(weight_bytes), result.default_ms)},
      {"lt_first_ms", or_null(result.lt_first_ms)},
      {"lt_best_ms", or_null(result.lt_best_ms)},
      {"lt_best_index", index_or_null(best)},
      {"lt_best_tflops", tera_per_s(flop, result.lt_best_ms)},
      {"lt_best_weight_tbps", tera_per_s(double(weight_bytes), result.lt_best_ms)},
      {"lt_best_speedup", result.lt_best_ms ? nlohmann::json(result.default_ms / *result.lt_best_ms) : nullptr},
      {"num_algos", returned},
      {"num_wrong", wrong},
      {"default_spot_rel_diff", default_spot_diff},
      {"lt_first_rel_diff", returned > 0 ? lt_diff[0] : nlohmann::json(nullptr)},
      {"lt_best_rel_diff", best >= 0 ? lt_diff[size_t(best)] : nlohmann::json(nullptr)},
      {"lt_ms", lt_ms},
      {"lt_rel_diff", lt_diff}};
  std::printf("%s\n", line.dump().c_str());
  std::fflush(stdout);
  return result;
}

std::vector<Shape> selected_shapes(const Options& o) {
  if (o.shapes.empty()) return llama8b_shapes();
  std::vector<Shape> out;
  for (const std::string& name : o.shapes) {
    const std::vector<Shape>& all = llama8b_shapes();
    auto it = std::find_if(all.begin(), all.end(), [&](const Shape& s) { return s.name == name; });
    if (it == all.end()) throw Error("unknown shape '" + name + "' (qkv, o, gate_up, down, lm_head)");
    out.push_back(*it);
  }
  return out;
}

void run(const Options& o) {
  for (int64_t r : o.rows) {
    if (r < 1 || r > (int64_t{1} << 20)) throw Error("--rows: " + std::to_string(r) + " is not in 1..1048576");
  }
  const std::vector<Shape> shapes = selected_shapes(o);
  Context ctx(o);
  for (int64_t rows : o.rows) {
    double step_default = 0, step_best = 0, step_first = 0;
    bool have_best = true, have_first = true;
    nlohmann::json names = nlohmann::json::array();
    for (const Shape& shape : shapes) {
      const CaseResult r = run_case(ctx, shape, rows);
      names.push_back(shape.name);
      step_default += shape.layers * r.default_ms;
      if (r.lt_best_ms) step_best += shape.layers * *r.lt_best_ms;
      else have_best = false;
      if (r.lt_first_ms) step_first += shape.layers * *r.lt_first_ms;
      else have_first = false;
    }
    nlohmann::json line = {{"summary", "step_gemm"},
                           {"rows", rows},
                           {"device", ctx.device_name},
                           {"shapes", names},
                           {"layers", kLayers},
                           {"step_gemm_default_ms", step_default},
                           {"step_gemm_lt_first_ms", have_first ? nlohmann::json(step_first) : nlohmann::json(nullptr)},
                           {"step_gemm_lt_best_ms", have_best ? nlohmann::json(step_best) : nlohmann::json(nullptr)}};
    std::printf("%s\n", line.dump().c_str());
    std::fflush(stdout);
  }
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"tessera-gemm-bench: cublasGemmEx (the CUDA executor's call) vs every cuBLASLt heuristic algorithm "
               "on the Llama-3.1-8B projections; one JSON line per case and per batch size"};
  app.add_option("--rows", o.rows, "batch sizes M, comma list")->delimiter(',');
  app.add_option("--shapes", o.shapes, "subset of qkv,o,gate_up,down,lm_head (default all)")->delimiter(',');
  app.add_option("--algos", o.algos, "cuBLASLt heuristic results requested")->check(CLI::Range(1, 256));
  app.add_option("--warmup", o.warmup, "untimed repeats")->check(CLI::Range(0, 1000));
  app.add_option("--repeat", o.repeat, "timed repeats (median)")->check(CLI::Range(1, 10000));
  app.add_option("--rotate-mb", o.rotate_mb, "weight copies total at least this many MB (L2 is not warm)")
      ->check(CLI::Range(0.0, 1e6));
  app.add_option("--device", o.device, "CUDA device");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    run(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
