/* ----------------------------------------------------------------------
   lmp-gnn: pybind11 module lmp_gnn._core, the C++ feature kernel of fix gnn/rollout
   exposed to Python so that tests/test_feature_parity.py can compare it with
   python/lmp_gnn/step/features.py in float64. numpy arrays in, numpy arrays out. Also the
   metadata parser of both backends (gnn_metadata.cpp), which tests/test_metadata.py
   compares with python/lmp_gnn/step/metadata.py.
------------------------------------------------------------------------- */

#include "gnn_features.h"
#include "gnn_model.h"
#include "gnn_rules.h"

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <map>
#include <string>

namespace py = pybind11;

using f64 = py::array_t<double, py::array::c_style | py::array::forcecast>;
using i64 = py::array_t<int64_t, py::array::c_style | py::array::forcecast>;

static void expect_shape(const py::buffer_info &b, const char *name, py::ssize_t ndim,
                         py::ssize_t last)
{
  if (b.ndim != ndim || (last >= 0 && b.shape[ndim - 1] != last)) {
    std::string shape = "[";
    for (py::ssize_t d = 0; d < b.ndim; ++d) shape += (d ? ", " : "") + std::to_string(b.shape[d]);
    throw py::value_error(std::string("expected ") + name + " with " + std::to_string(ndim) +
                          " dimensions" +
                          (last >= 0 ? " and last dimension " + std::to_string(last) : "") +
                          ", got shape " + shape + "]");
  }
}

// two [N, 2] arrays of the same N
static void expect_pair(const py::buffer_info &a, const char *name_a, const py::buffer_info &b,
                        const char *name_b)
{
  expect_shape(a, name_a, 2, 2);
  expect_shape(b, name_b, 2, 2);
  if (a.shape[0] != b.shape[0])
    throw py::value_error(std::string(name_a) + " and " + name_b + " differ in N");
}

static const double *box_of(const f64 &box)
{
  auto b = box.request();
  if (b.size != 2) throw py::value_error("expected box of 2 lengths, got " + std::to_string(b.size));
  return static_cast<const double *>(b.ptr);
}

PYBIND11_MODULE(_core, m)
{
  m.doc() = "C++ feature kernel of fix gnn/rollout (docs/formats.md, feature contract)";
  m.attr("FEATURE_VERSION") = LMPGNN::FEATURE_VERSION;
  m.attr("EDGE_DIM") = LMPGNN::EDGE_DIM;

  m.def(
      "edge_index_from_bonds",
      [](i64 bonds) {
        auto b = bonds.request();
        expect_shape(b, "bonds", 2, 2);
        const py::ssize_t nb = b.shape[0];
        py::array_t<int64_t> out({(py::ssize_t) 2, 2 * nb});
        LMPGNN::edge_index_from_bonds(nb, static_cast<const int64_t *>(b.ptr),
                                      out.mutable_data());
        return out;
      },
      py::arg("bonds"), "[M, 2] bonds -> [2, 2M] directed edges (sender, receiver), forward first");

  m.def(
      "edge_features",
      [](f64 positions, f64 box, i64 edge_index, f64 rest_length) {
        auto p = positions.request(), e = edge_index.request(), r = rest_length.request();
        expect_shape(p, "positions", 2, 2);
        expect_shape(e, "edge_index", 2, -1);
        if (e.shape[0] != 2) throw py::value_error("expected edge_index of shape [2, E]");
        const py::ssize_t ne = e.shape[1];
        if (r.ndim != 1 || r.shape[0] != ne)
          throw py::value_error("expected rest_length of shape [" + std::to_string(ne) + "]");
        const auto *idx = static_cast<const int64_t *>(e.ptr);
        for (py::ssize_t k = 0; k < 2 * ne; ++k)
          if (idx[k] < 0 || idx[k] >= p.shape[0])
            throw py::value_error("edge_index entry " + std::to_string(idx[k]) +
                                  " outside [0, " + std::to_string(p.shape[0]) + ")");
        py::array_t<double> out({ne, (py::ssize_t) LMPGNN::EDGE_DIM});
        LMPGNN::edge_features(static_cast<const double *>(p.ptr), box_of(box), ne, idx,
                              static_cast<const double *>(r.ptr), out.mutable_data());
        return out;
      },
      py::arg("positions"), py::arg("box"), py::arg("edge_index"), py::arg("rest_length"),
      "[E, 4] edge features (dx, dy, |d|, 1/l_r), d = minimum image of r_receiver - r_sender");

  m.def(
      "node_features",
      [](f64 velocities) {
        auto v = velocities.request();
        expect_shape(v, "velocities", 3, 2);
        const int h = (int) v.shape[0];
        const py::ssize_t n = v.shape[1];
        py::array_t<double> out({n, (py::ssize_t) 2 * h});
        LMPGNN::node_features(h, n, static_cast<const double *>(v.ptr), out.mutable_data());
        return out;
      },
      py::arg("velocities"), "[h, N, 2] velocity history, newest first -> [N, 2h] node features");

  m.def(
      "free_axis_strain",
      [](f64 positions, f64 displacement, int axis) {
        auto p = positions.request(), u = displacement.request();
        expect_pair(p, "positions", u, "displacement");
        if (axis < 0 || axis > 1) throw py::value_error("expected axis 0 or 1, got " + std::to_string(axis));
        return LMPGNN::free_axis_strain(p.shape[0], static_cast<const double *>(p.ptr),
                                        static_cast<const double *>(u.ptr), axis);
      },
      py::arg("positions"), py::arg("displacement"), py::arg("axis"),
      "affine strain increment eps = sum u y / sum y^2 along axis, positions unwrapped (the box rule)");

  m.def(
      "push_velocity",
      [](f64 history, f64 velocity) {
        auto h = history.request(), v = velocity.request();
        expect_shape(h, "history", 2, -1);
        expect_shape(v, "velocity", 2, 2);
        if (h.shape[1] % 2 || h.shape[0] != v.shape[0])
          throw py::value_error("expected history [N, 2h] and velocity [N, 2]");
        py::array_t<double> out({h.shape[0], h.shape[1]});
        double *o = out.mutable_data();
        const auto *hp = static_cast<const double *>(h.ptr);
        const auto *vp = static_cast<const double *>(v.ptr);
        const int nh = (int) h.shape[1];
        for (py::ssize_t i = 0; i < h.shape[0]; ++i) {
          for (int k = 0; k < nh; ++k) o[i * nh + k] = hp[i * nh + k];
          LMPGNN::push_velocity(nh / 2, o + i * nh, vp[2 * i], vp[2 * i + 1]);
        }
        return out;
      },
      py::arg("history"), py::arg("velocity"),
      "[N, 2h] node-feature rows with v(t+1) [N, 2] pushed in front (the fix's history roll)");

  /* ---------------------------------------------------------------- the learned step's rules */

  m.def(
      "advance",
      [](f64 positions, f64 history, f64 accel) {
        auto p = positions.request(), h = history.request(), a = accel.request();
        expect_shape(p, "positions", 2, 2);
        expect_shape(h, "history", 2, -1);
        expect_shape(a, "accel", 2, 2);
        if (h.shape[1] % 2 || h.shape[0] != p.shape[0] || a.shape[0] != p.shape[0])
          throw py::value_error("expected positions [N, 2], history [N, 2h] and accel [N, 2]");
        const int nh = (int) h.shape[1];
        py::array_t<double> r_out({p.shape[0], (py::ssize_t) 2}), h_out({h.shape[0], h.shape[1]});
        double *r = r_out.mutable_data(), *hh = h_out.mutable_data();
        std::copy_n(static_cast<const double *>(p.ptr), 2 * p.shape[0], r);
        std::copy_n(static_cast<const double *>(h.ptr), nh * h.shape[0], hh);
        const auto *ap = static_cast<const double *>(a.ptr);
        for (py::ssize_t i = 0; i < p.shape[0]; ++i) {
          double u[2];
          LMPGNN::advance(nh / 2, hh + i * nh, r + 2 * i, ap + 2 * i, u);
        }
        return py::make_tuple(r_out, h_out);
      },
      py::arg("positions"), py::arg("history"), py::arg("accel"),
      "one learned step: (r + v(t) + a, history [N, 2h] with v(t+1) pushed in front)");

  m.def(
      "box_rule",
      [](f64 box, int driven, double delta_l, double eps) {
        if (driven < 0 || driven > 1) throw py::value_error("expected driven axis 0 or 1");
        py::array_t<double> out(2);
        LMPGNN::box_rule(box_of(box), driven, delta_l, eps, out.mutable_data());
        return out;
      },
      py::arg("box"), py::arg("driven"), py::arg("delta_l"), py::arg("eps"),
      "the box after one learned step: driven length - delta_l, the other * (1 + eps)");

  m.def(
      "unwrap",
      [](f64 x, py::array_t<int, py::array::c_style | py::array::forcecast> image, f64 box) {
        auto xb = x.request(), ib = image.request();
        expect_pair(xb, "x", ib, "image");
        const double *L = box_of(box);
        py::array_t<double> out({xb.shape[0], (py::ssize_t) 2});
        double *o = out.mutable_data();
        const auto *xp = static_cast<const double *>(xb.ptr);
        const auto *ip = static_cast<const int *>(ib.ptr);
        for (py::ssize_t k = 0; k < 2 * xb.shape[0]; ++k)
          o[k] = LMPGNN::unwrap(xp[k], ip[k], L[k % 2]);
        return out;
      },
      py::arg("x"), py::arg("image"), py::arg("box"), "[N, 2] x + n L");

  m.def(
      "net_bond_force",
      [](f64 edge_features, py::array_t<int64_t, py::array::c_style | py::array::forcecast> edge_index,
         int64_t nnodes) {
        auto f = edge_features.request(), ei = edge_index.request();
        if (f.ndim != 2 || f.shape[1] != LMPGNN::EDGE_DIM || ei.ndim != 2 || ei.shape[0] != 2 ||
            ei.shape[1] != f.shape[0])
          throw py::value_error("expected edge_features [E, 4] and edge_index [2, E]");
        py::array_t<double> out({(py::ssize_t) nnodes, (py::ssize_t) 2});
        LMPGNN::net_bond_force(nnodes, f.shape[0], static_cast<const int64_t *>(ei.ptr),
                               static_cast<const double *>(f.ptr), out.mutable_data());
        return out;
      },
      py::arg("edge_features"), py::arg("edge_index"), py::arg("n_nodes"),
      "[N, 2] net force of the harmonic bonds (K = 1/l_r) on each node, from the edge features");

  m.def("free_strain_from_fits", &LMPGNN::free_strain_from_fits, py::arg("fit_free"), py::arg("fit_driven"),
        py::arg("driven_strain"), "driven_strain * fit_free / fit_driven (fit_free without a ratio)");

  m.def("step_delta_l", &LMPGNN::step_delta_l, py::arg("delta_l"), py::arg("box_length"), py::arg("length"),
        "delta_l for a box of driven length `length`: delta_l * length / box_length (box_length 0: delta_l)");

  m.def(
      "hand_over_velocity",
      [](f64 u, f64 r, f64 box, f64 box_new, double md_time) {
        auto ub = u.request(), rb = r.request();
        expect_pair(ub, "u", rb, "r");
        const double *L = box_of(box), *Ln = box_of(box_new);
        const double strain[2] = {LMPGNN::box_strain(L[0], Ln[0]), LMPGNN::box_strain(L[1], Ln[1])};
        py::array_t<double> out({ub.shape[0], (py::ssize_t) 2});
        double *o = out.mutable_data();
        const auto *up = static_cast<const double *>(ub.ptr);
        const auto *rp = static_cast<const double *>(rb.ptr);
        for (py::ssize_t k = 0; k < 2 * ub.shape[0]; ++k)
          o[k] = LMPGNN::hand_over_velocity(up[k], rp[k], 0.0, strain[k % 2], md_time);
        return out;
      },
      py::arg("u"), py::arg("r"), py::arg("box"), py::arg("box_new"), py::arg("md_time"),
      "[N, 2] MD velocity continuing a learned step, r unwrapped (box centred at the origin)");

  m.def(
      "nu_estimator",
      [](f64 r0, f64 rt, f64 box0, f64 boxt, int driven) {
        auto a = r0.request(), b = rt.request();
        expect_pair(a, "r0", b, "rt");
        if (driven < 0 || driven > 1) throw py::value_error("expected driven axis 0 or 1");
        return LMPGNN::nu_estimator(a.shape[0], static_cast<const double *>(a.ptr),
                                    static_cast<const double *>(b.ptr), box_of(box0), box_of(boxt),
                                    driven);
      },
      py::arg("r0"), py::arg("rt"), py::arg("box0"), py::arg("boxt"), py::arg("driven") = 0,
      "the paper's nu_est (strain form), nodes followed from their snapshot-0 images");

  // the metadata schema (gnn_metadata.cpp), for tests/test_metadata.py
  py::tuple keys(LMPGNN::NUM_METADATA_KEYS);
  for (int k = 0; k < LMPGNN::NUM_METADATA_KEYS; ++k) keys[k] = LMPGNN::METADATA_KEYS[k];
  m.attr("METADATA_KEYS") = keys;
  m.attr("MODEL_FORMAT") = LMPGNN::MODEL_FORMAT;
  m.attr("MIN_HISTORY") = LMPGNN::MIN_HISTORY;
  m.attr("MAX_HISTORY") = LMPGNN::MAX_HISTORY;
  m.attr("MIN_LAYERS") = LMPGNN::MIN_LAYERS;
  m.attr("MAX_LAYERS") = LMPGNN::MAX_LAYERS;
  m.def(
      "parse_metadata",
      [](const std::string &source, const std::map<std::string, std::string> &raw) {
        LMPGNN::ModelInfo info;
        try {
          info = LMPGNN::parse_metadata(source, raw);
        } catch (LMPGNN::ModelError &e) {
          throw py::value_error(e.what());
        }
        py::dict out;
        out["lmp_gnn_format"] = info.format;
        out["feature_version"] = info.feature_version;
        out["history"] = info.history;
        out["layers"] = info.layers;
        out["dimension"] = info.dimension;
        out["delta_l"] = info.delta_l;
        out["strain_rate"] = info.strain_rate;
        out["timestep"] = info.timestep;
        out["md_steps_per_step"] = info.md_steps_per_step;
        out["dtype"] = info.dtype;
        out["lmp_gnn_version"] = info.version;
        if (info.box_length > 0.0)
          out["box_length"] = info.box_length;
        else
          out["box_length"] = py::none();
        if (info.weights_crc32.empty())
          out["weights_crc32"] = py::none();
        else
          out["weights_crc32"] = info.weights_crc32;
        return out;
      },
      py::arg("source"), py::arg("raw"),
      "the fix's reading of model metadata (key -> text): the typed values, or ValueError with the "
      "fix's message");
}
