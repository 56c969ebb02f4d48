/* ----------------------------------------------------------------------
   lmp-gnn: the metadata schema of a model of fix gnn/rollout, for both backends.

   parse_metadata() checks the metadata strings of a model: the extra files of an exported
   TorchScript model (gnn_model.cpp) or a Python model's metadata rendered as the same strings by
   lmp_gnn.coupling.bridge (gnn_python_backend.cpp). The schema is python/lmp_gnn/step/metadata.py's: the same
   keys, types, valid values, order of the checks and messages; tests/test_metadata.py compares
   the two through lmp_gnn._core.parse_metadata.

     integers   lmp_gnn_format = MODEL_FORMAT, feature_version = FEATURE_VERSION,
                history MIN_HISTORY..MAX_HISTORY, layers MIN_LAYERS..MAX_LAYERS,
                dimension = MODEL_DIMENSION  (decimal digits with an optional sign)
     numbers    delta_l, strain_rate finite; timestep finite >= 0; md_steps_per_step finite > 0
                (decimal floats: sign, digits, point, exponent)
     strings    dtype float32 or float64; lmp_gnn_version not empty
     optional   box_length finite > 0, or missing/empty (ModelInfo::box_length 0: not recorded);
                weights_crc32 8 lowercase hexadecimal digits, or missing/empty (not recorded; the
                TorchScript backend checks the weights against it, gnn_model.cpp)
------------------------------------------------------------------------- */

#include "gnn_features.h"
#include "gnn_model.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>

namespace LMPGNN {

const char *const METADATA_KEYS[] = {"lmp_gnn_format", "feature_version", "history",
                                     "layers", "dimension", "delta_l", "strain_rate",
                                     "timestep", "md_steps_per_step", "dtype", "lmp_gnn_version",
                                     "box_length", "weights_crc32"};
const int NUM_METADATA_KEYS = sizeof(METADATA_KEYS) / sizeof(METADATA_KEYS[0]);

// keys a model may lack (python/lmp_gnn/step/metadata.py OPTIONAL_KEYS)
static bool optional_key(const char *key)
{
  return std::strcmp(key, "box_length") == 0 || std::strcmp(key, "weights_crc32") == 0;
}

static const char *REEXPORT_HINT = "; re-export it with `lmp-gnn export`";

std::string strip(const std::string &s)
{
  const auto first = s.find_first_not_of(" \t\r\n\f\v");
  if (first == std::string::npos) return "";
  const auto last = s.find_last_not_of(" \t\r\n\f\v");
  return s.substr(first, last - first + 1);
}

static long to_int(const std::string &source, const std::string &key, const std::string &value)
{
  // [+-]?[0-9]+ within the range of a 64-bit integer
  std::size_t digits = (value[0] == '+' || value[0] == '-') ? 1 : 0;
  bool ok = digits < value.size() &&
      value.find_first_not_of("0123456789", digits) == std::string::npos;
  if (ok) {
    errno = 0;
    char *end = nullptr;
    const long long v = std::strtoll(value.c_str(), &end, 10);
    if (errno == 0 && end == value.c_str() + value.size()) return (long) v;
  }
  throw ModelError(source + ": metadata '" + key + "' must be an integer, got '" + value + "'");
}

static double to_double(const std::string &source, const std::string &key,
                        const std::string &value)
{
  // a decimal float ([+-]?(digits[.digits]|.digits)([eE][+-]?digits)?): no hex, inf or nan
  if (value.find_first_not_of("0123456789+-.eE") == std::string::npos) {
    char *end = nullptr;
    const double v = std::strtod(value.c_str(), &end);    // underflow to 0 or a subnormal is fine
    if (end == value.c_str() + value.size() && std::isfinite(v)) return v;
  }
  throw ModelError(source + ": metadata '" + key + "' must be a finite number, got '" + value +
                   "'");
}

ModelInfo parse_metadata(const std::string &source, const std::map<std::string, std::string> &raw)
{
  auto get = [&](const char *key) {
    auto it = raw.find(key);
    return it == raw.end() ? std::string() : strip(it->second);
  };
  auto fail = [&](const char *key, const std::string &expected, const char *hint = "") {
    return ModelError(source + ": expected " + key + " " + expected + ", got " + get(key) + hint);
  };
  ModelInfo info;
  for (const auto &kv : raw) info.raw[kv.first] = strip(kv.second);

  if (get("lmp_gnn_format").empty())
    throw ModelError(source +
                     " is a TorchScript file without lmp-gnn metadata (no 'lmp_gnn_format'); "
                     "make one with `lmp-gnn export`");
  for (int k = 0; k < NUM_METADATA_KEYS; ++k)
    if (get(METADATA_KEYS[k]).empty() && !optional_key(METADATA_KEYS[k]))
      throw ModelError(source + " lacks metadata '" + METADATA_KEYS[k] + "'" + REEXPORT_HINT);

  // each key is read, then checked, in the order of METADATA_KEYS (so the first bad key is named)
  const long format = to_int(source, "lmp_gnn_format", get("lmp_gnn_format"));
  if (format != MODEL_FORMAT)
    throw fail("lmp_gnn_format", std::to_string(MODEL_FORMAT), REEXPORT_HINT);
  const long feature_version = to_int(source, "feature_version", get("feature_version"));
  if (feature_version != FEATURE_VERSION)
    throw fail("feature_version", std::to_string(FEATURE_VERSION));
  const long history = to_int(source, "history", get("history"));
  if (history < MIN_HISTORY || history > MAX_HISTORY)
    throw fail("history",
               "between " + std::to_string(MIN_HISTORY) + " and " + std::to_string(MAX_HISTORY));
  const long layers = to_int(source, "layers", get("layers"));
  if (layers < MIN_LAYERS || layers > MAX_LAYERS)
    throw fail("layers",
               "between " + std::to_string(MIN_LAYERS) + " and " + std::to_string(MAX_LAYERS));
  const long dimension = to_int(source, "dimension", get("dimension"));
  if (dimension != MODEL_DIMENSION) throw fail("dimension", std::to_string(MODEL_DIMENSION));
  info.format = (int) format;
  info.feature_version = (int) feature_version;
  info.history = (int) history;
  info.layers = (int) layers;
  info.dimension = (int) dimension;
  info.delta_l = to_double(source, "delta_l", get("delta_l"));
  info.strain_rate = to_double(source, "strain_rate", get("strain_rate"));
  info.timestep = to_double(source, "timestep", get("timestep"));
  if (!(info.timestep >= 0.0)) throw fail("timestep", ">= 0");
  info.md_steps_per_step = to_double(source, "md_steps_per_step", get("md_steps_per_step"));
  if (!(info.md_steps_per_step > 0.0)) throw fail("md_steps_per_step", "> 0");
  info.dtype = get("dtype");
  if (info.dtype != "float32" && info.dtype != "float64")
    throw ModelError(source + ": expected dtype float32 or float64, got '" + info.dtype + "'");
  info.version = get("lmp_gnn_version");
  if (!get("box_length").empty()) {
    info.box_length = to_double(source, "box_length", get("box_length"));
    if (!(info.box_length > 0.0)) throw fail("box_length", "> 0");
  }
  info.weights_crc32 = get("weights_crc32");
  if (!info.weights_crc32.empty() &&
      (info.weights_crc32.size() != 8 ||
       info.weights_crc32.find_first_not_of("0123456789abcdef") != std::string::npos))
    throw fail("weights_crc32", "8 lowercase hexadecimal digits");
  return info;
}

}    // namespace LMPGNN
