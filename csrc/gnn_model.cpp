/* ----------------------------------------------------------------------
   lmp-gnn: TorchScript backend of fix gnn/rollout (built as libgnn_torch.so).

   The only translation unit that includes torch. Loads an exported model with
   torch::jit::load(path, device, extra_files), checks its metadata with parse_metadata
   (gnn_metadata.cpp; docs/formats.md, "Exported models") and runs forward(node_features, edge_index,
   edge_features) -> accelerations. Every libtorch exception is turned into a ModelError
   here, so nothing from torch crosses into LAMMPS. A model whose metadata carry weights_crc32
   is refused when its weights do not give that checksum (torch reads a damaged tensor without
   complaint).
------------------------------------------------------------------------- */

#include "gnn_model.h"

#include "gnn_features.h"

#include <torch/cuda.h>
// narrow includes instead of <torch/script.h>: this is the slowest translation unit to compile
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/from_blob.h>
#include <c10/core/InferenceMode.h>
#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/serialization/import.h>

#include <ATen/Parallel.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sys/stat.h>
#include <cstdlib>
#include <memory>
#include <vector>

namespace LMPGNN {

static const char *EXPORT_HINT = "; make one with `lmp-gnn export`";

namespace {

  std::string torch_message(const std::exception &e)
  {
    if (auto *ce = dynamic_cast<const c10::Error *>(&e)) return ce->what_without_backtrace();
    return e.what();
  }

  // CRC-32 as zlib computes it (reflected polynomial 0xEDB88320), continuing from `crc` like
  // Python's zlib.crc32(data, crc)
  uint32_t crc32(uint32_t crc, const void *data, std::size_t n)
  {
    static const std::array<uint32_t, 256> table = [] {
      std::array<uint32_t, 256> t{};
      for (uint32_t i = 0; i < 256; ++i) {
        uint32_t c = i;
        for (int k = 0; k < 8; ++k) c = (c & 1u) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        t[i] = c;
      }
      return t;
    }();
    auto p = static_cast<const unsigned char *>(data);
    crc = ~crc;
    while (n--) crc = table[(crc ^ *p++) & 0xFFu] ^ (crc >> 8);
    return ~crc;
  }

  // the metadata's weights_crc32 of a module, as lmp_gnn.learning.export.weights_checksum
  // computes it: every parameter and buffer sorted by name, each as its name, a NUL byte and
  // its raw bytes (contiguous, host byte order)
  std::string weights_checksum(const torch::jit::Module &module)
  {
    std::vector<std::pair<std::string, at::Tensor>> tensors;
    for (const auto &p : module.named_parameters(true)) tensors.emplace_back(p.name, p.value);
    for (const auto &b : module.named_buffers(true)) tensors.emplace_back(b.name, b.value);
    std::sort(tensors.begin(), tensors.end(),
              [](const auto &a, const auto &b) { return a.first < b.first; });
    uint32_t crc = 0;
    for (const auto &nt : tensors) {
      crc = crc32(crc, nt.first.c_str(), nt.first.size() + 1);
      const at::Tensor t = nt.second.detach().to(at::kCPU).contiguous();
      crc = crc32(crc, t.data_ptr(), static_cast<std::size_t>(t.numel()) * t.element_size());
    }
    char hex[9];
    std::snprintf(hex, sizeof(hex), "%08x", crc);
    return hex;
  }

  // Models loaded in this process, newest last: a fix re-created on the same file (a deck that
  // unfixes and fixes again between runs, e.g. around `minimize`) reuses the module, its checked
  // metadata and its warmed-up graph executor (the first calls of a freshly loaded TorchScript
  // module cost ~40 ms more, a load ~20 ms, against ~2 ms a call). The key holds the file's size
  // and modification time, so a file written again is read again. A module is stateless under
  // forward(), so fixes may share it.
  struct LoadedModule {
    std::string key;
    torch::jit::script::Module module;
    ModelInfo info;
  };
  constexpr std::size_t MODULE_CACHE_SIZE = 4;

  std::vector<LoadedModule> &loaded_modules()
  {
    static std::vector<LoadedModule> modules;
    return modules;
  }

  // path, device, size and modification time of the file; "" if it cannot be stat'ed
  std::string module_key(const std::string &path, const c10::Device &device)
  {
    struct stat st;
    if (stat(path.c_str(), &st) != 0) return "";
    char *real = realpath(path.c_str(), nullptr);
    const std::string name = real ? real : path;
    std::free(real);
    return name + "|" + device.str() + "|" + std::to_string((long long) st.st_size) + "|" +
        std::to_string((long long) st.st_mtim.tv_sec) + "." + std::to_string((long long) st.st_mtim.tv_nsec);
  }

  class TorchScriptModel : public GNNModel {
   public:
    TorchScriptModel(const std::string &path, const std::string &device_name) :
        path_(path), device_(at::kCPU)
    {
      {
        std::ifstream probe(path, std::ios::binary);
        if (!probe.good()) throw ModelError("cannot open model file " + path);
      }
      try {
        device_ = c10::Device(device_name);
      } catch (std::exception &e) {
        throw ModelError("unknown torch device '" + device_name + "': " + torch_message(e));
      }
      if (device_.is_cuda() && !torch::cuda::is_available())
        throw ModelError("torch device " + device_name +
                         " requested, but this libtorch has no CUDA support or sees no GPU");
      const std::string key = module_key(path, device_);
      for (const LoadedModule &m : loaded_modules())
        if (!key.empty() && m.key == key) {
          module_ = m.module;
          info_ = m.info;
          dtype_ = info_.dtype == "float32" ? at::kFloat : at::kDouble;
          return;
        }
      torch::jit::ExtraFilesMap extra;
      for (int k = 0; k < NUM_METADATA_KEYS; ++k) extra[METADATA_KEYS[k]] = "";
      try {
        module_ = torch::jit::load(path, device_, extra);
      } catch (std::exception &e) {
        throw ModelError("cannot read " + path + " as a TorchScript model (" +
                         strip(torch_message(e)).substr(0, 200) + ")" + EXPORT_HINT);
      }
      std::map<std::string, std::string> raw(extra.begin(), extra.end());
      info_ = parse_metadata("model file " + path, raw);
      if (!module_.find_method("forward"))
        throw ModelError("model file " + path + " has no forward() method" + EXPORT_HINT);
      if (!info_.weights_crc32.empty()) {
        std::string got;
        try {
          got = weights_checksum(module_);
        } catch (std::exception &e) {
          throw ModelError("model file " + path + ": cannot read its weights (" +
                           strip(torch_message(e)) + ")");
        }
        if (got != info_.weights_crc32)
          throw ModelError("model file " + path +
                           ": weights do not match the checksum in its metadata (weights_crc32 " +
                           info_.weights_crc32 + ", the weights give " + got +
                           "); the file is damaged");
      }
      module_.eval();
      dtype_ = info_.dtype == "float32" ? at::kFloat : at::kDouble;
      if (key.empty()) return;
      auto &modules = loaded_modules();
      if (modules.size() == MODULE_CACHE_SIZE) modules.erase(modules.begin());
      modules.push_back({key, module_, info_});
    }

    std::string description() const override
    {
      return "TorchScript " + path_ + " on " + device_.str() + " (" + info_.dtype + ")";
    }

    void compute(int64_t n, const double *node_features, int64_t nedges,
                 const int64_t *edge_index, const double *edge_features, double *accel) override
    {
      const int64_t nf = 2 * info_.history;
      try {
        c10::InferenceMode guard;
        auto f64 = at::TensorOptions().dtype(at::kDouble);
        auto i64 = at::TensorOptions().dtype(at::kLong);
        auto x = at::from_blob(const_cast<double *>(node_features), {n, nf}, f64);
        auto ei = at::from_blob(const_cast<int64_t *>(edge_index), {2, nedges}, i64);
        auto ef = at::from_blob(const_cast<double *>(edge_features), {nedges, EDGE_DIM}, f64);
        at::Tensor xin = stage(x, node_buf_), ein = stage(ef, edge_buf_);
        at::Tensor iin = ei;
        if (device_ != at::kCPU) iin = stage(ei, index_buf_, at::kLong);
        inputs_.clear();
        inputs_.emplace_back(xin);
        inputs_.emplace_back(iin);
        inputs_.emplace_back(ein);
        auto out = module_.forward(inputs_);
        inputs_.clear();
        if (!out.isTensor())
          throw ModelError("model forward() returned a " + out.tagKind() + ", expected a Tensor");
        at::Tensor a = out.toTensor();
        if (a.dim() != 2 || a.size(0) != n || a.size(1) != info_.dimension)
          throw ModelError("expected model output of shape [" + std::to_string(n) + ", " +
                           std::to_string(info_.dimension) + "], got " + shape(a));
        // the dtype the metadata declare (an int64 or float32 output of a float64 model is a
        // model that does not compute what its metadata say)
        if (a.scalar_type() != dtype_)
          throw ModelError("expected accelerations of dtype " + info_.dtype +
                           " (metadata 'dtype'), got a tensor of dtype " + dtype_name(a));
        a = a.to(at::kCPU, at::kDouble).contiguous();
        std::memcpy(accel, a.data_ptr<double>(), sizeof(double) * n * info_.dimension);
      } catch (ModelError &) {
        inputs_.clear();
        throw;
      } catch (std::exception &e) {
        inputs_.clear();
        throw ModelError("model forward() failed: " + strip(torch_message(e)));
      }
    }

   private:
    // copy a host float64/int64 tensor into a persistent buffer of the model dtype and device
    at::Tensor stage(const at::Tensor &src, at::Tensor &buf, c10::optional<at::ScalarType> as = {})
    {
      const auto dt = as ? *as : dtype_;
      if (dt == src.scalar_type() && device_ == at::kCPU) return src;
      const int64_t rows = src.size(0), cols = src.size(1);
      if (!buf.defined() || buf.size(0) < rows || buf.size(1) != cols) {
        const int64_t cap = std::max<int64_t>(rows + rows / 8, 16);
        buf = at::empty({cap, cols}, at::TensorOptions().dtype(dt).device(device_));
      }
      auto view = buf.narrow(0, 0, rows);
      view.copy_(src);
      return view;
    }

    // torch's name of a tensor's dtype: float32, float64, int64, ...
    static std::string dtype_name(const at::Tensor &t)
    {
      switch (t.scalar_type()) {
        case at::kFloat: return "float32";
        case at::kDouble: return "float64";
        case at::kHalf: return "float16";
        case at::kBFloat16: return "bfloat16";
        case at::kLong: return "int64";
        case at::kInt: return "int32";
        case at::kShort: return "int16";
        case at::kChar: return "int8";
        case at::kByte: return "uint8";
        case at::kBool: return "bool";
        default: return c10::toString(t.scalar_type());
      }
    }

    static std::string shape(const at::Tensor &t)
    {
      std::string s = "[";
      for (int64_t d = 0; d < t.dim(); ++d) s += (d ? ", " : "") + std::to_string(t.size(d));
      return s + "]";
    }

    std::string path_;
    c10::Device device_;
    at::ScalarType dtype_ = at::kDouble;
    torch::jit::script::Module module_;
    std::vector<torch::jit::IValue> inputs_;
    at::Tensor node_buf_, edge_buf_, index_buf_;
  };

}    // namespace

}    // namespace LMPGNN

extern "C" LMPGNN::GNNModel *lmpgnn_load_torchscript(const char *path, const char *device,
                                                     int nthreads, char *error, int errlen)
{
  try {
    if (nthreads > 0) at::set_num_threads(nthreads);
    return new LMPGNN::TorchScriptModel(path, device);
  } catch (std::exception &e) {
    std::string msg = e.what();
    if (auto *ce = dynamic_cast<const c10::Error *>(&e)) msg = ce->what_without_backtrace();
    std::snprintf(error, errlen, "%s", msg.c_str());
  } catch (...) {
    std::snprintf(error, errlen, "unknown error while loading %s", path);
  }
  return nullptr;
}
