/* -*- c++ -*- ----------------------------------------------------------
   lmp-gnn: model backends of fix gnn/rollout ("features -> accelerations").

   The fix talks to a model only through GNNModel. The TorchScript backend lives in its own
   shared library (libgnn_torch.so, gnn_model.cpp) that the fix loads with dlopen() when a
   fix gnn/rollout is created, so plain LAMMPS runs that never use the fix do not pay for
   loading libtorch; no torch header is included outside gnn_model.cpp.

   Device contract: features are handed over as float64 host arrays; the backend casts them
   to the model dtype and device, runs the model and returns float64 host accelerations.
   Buffers are kept across calls and only grow.
------------------------------------------------------------------------- */

#ifndef LMP_GNN_MODEL_H
#define LMP_GNN_MODEL_H

#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>

namespace LMPGNN {

// a model that cannot be loaded or run; what() is the message shown in the LAMMPS error
class ModelError : public std::runtime_error {
 public:
  explicit ModelError(const std::string &msg) : std::runtime_error(msg) {}
};

// metadata of an exported model (docs/formats.md, "Exported models")
struct ModelInfo {
  int format = 0;               // lmp_gnn_format
  int feature_version = 0;      // feature_version
  int history = 0;              // h, velocities per node
  int layers = 0;               // k, message-passing layers
  int dimension = 0;            // spatial dimension
  double delta_l = 0.0;         // box-length change per learned step along the driven axis
  double strain_rate = 0.0;     // strain rate of the training MD (per MD time unit)
  double timestep = 0.0;        // MD timestep of the training data
  double md_steps_per_step = 0.0;    // MD steps one learned step stood for
  std::string dtype;            // float32 or float64
  std::string version;          // lmp_gnn_version of the exporter
  double box_length = 0.0;      // optional: mean initial driven-axis box length of the training
                                // trajectories; 0 when the model does not record it
  std::string weights_crc32;    // optional: CRC-32 of the weights (8 hex digits); empty when not
                                // recorded
  std::map<std::string, std::string> raw;    // every key as read
};

// The metadata schema (gnn_metadata.cpp; the same as python/lmp_gnn/step/metadata.py, which
// tests/test_metadata.py checks): names of the metadata keys, in the order they are checked,
// and their valid values
extern const char *const METADATA_KEYS[];
extern const int NUM_METADATA_KEYS;
constexpr int MODEL_FORMAT = 1;
constexpr int MODEL_DIMENSION = 2;
constexpr int MIN_HISTORY = 1, MAX_HISTORY = 3;
constexpr int MIN_LAYERS = 0, MAX_LAYERS = 64;

class GNNModel {
 public:
  virtual ~GNNModel() = default;
  const ModelInfo &info() const { return info_; }
  virtual std::string description() const = 0;

  // a = model(node_features [n][2h], edge_index [2][nedges], edge_features [nedges][4]);
  // writes accel [n][dimension]; throws ModelError on any backend failure or wrong shape
  virtual void compute(int64_t n, const double *node_features, int64_t nedges,
                       const int64_t *edge_index, const double *edge_features, double *accel) = 0;

 protected:
  ModelInfo info_;
};

// parse and check the metadata strings of a model (the extra files of an exported model, or a
// Python model's metadata as lmp_gnn.coupling.bridge renders them); throws ModelError naming the key, the
// expected value and what was found, each message starting with `source` ("model file X")
ModelInfo parse_metadata(const std::string &source, const std::map<std::string, std::string> &raw);

// s without leading and trailing white space (metadata values, backend messages)
std::string strip(const std::string &s);

}    // namespace LMPGNN

// entry point of the TorchScript backend library (libgnn_torch.so), looked up with dlsym;
// returns nullptr and fills `error` on failure. nthreads > 0 sets torch's intra-op threads.
extern "C" LMPGNN::GNNModel *lmpgnn_load_torchscript(const char *path, const char *device,
                                                     int nthreads, char *error, int errlen);
using lmpgnn_loader_t = LMPGNN::GNNModel *(*) (const char *, const char *, int, char *, int);

#endif
