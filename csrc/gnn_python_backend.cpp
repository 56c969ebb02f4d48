/* ----------------------------------------------------------------------
   lmp-gnn: Python backend of fix gnn/rollout (built as libgnn_python.so, pybind11 embed).

   `fix ID group gnn/rollout python SPEC ...` loads this library with dlopen() and calls
   lmpgnn_load_python(SPEC, ...). The model is whatever lmp_gnn.coupling.bridge.load_model_spec(SPEC)
   returns (python/lmp_gnn/coupling/bridge.py, docs/python_bridge.md): a Python callable taking the graph
   snapshot as arrays and returning accelerations.

   Interpreter:
   - LAMMPS driven from Python (`import lammps`): Py_IsInitialized() is true and the running
     interpreter is used; every call into Python holds the GIL (py::gil_scoped_acquire), since
     the lammps module calls LAMMPS through ctypes with the GIL released.
   - LAMMPS run as `lmp`: an interpreter is embedded once per process, configured as the Python
     environment lmp_gnn is installed in: program_name = <prefix>/bin/python3.X derived from this
     library's location (<prefix>/lib/python3.X/site-packages/lmp_gnn/libgnn_python.so), so a
     venv's pyvenv.cfg is honoured, falling back to the interpreter lmp-gnn was built with; the
     site-packages directory holding lmp_gnn is added with site.addsitedir. PYTHONPATH is
     honoured. Python's signal handlers are not installed (Ctrl-C stays LAMMPS's), and the
     interpreter is never finalised (other libraries may still hold Python objects at exit).

   Metadata: lmp_gnn.coupling.bridge checks the factory's metadata (lmp_gnn.step.metadata) and BridgeModel.info()
   renders them as the strings of an exported file, which go through parse_metadata
   (gnn_metadata.cpp), the parser of the TorchScript backend.

   Data: the features are handed to Python as read-only numpy views of the fix's float64
   buffers (no copy), or of this backend's float32 buffers for a float32 model. The returned
   accelerations are checked (shape, dtype) in Python and copied into the fix's buffer here.
   Every Python exception becomes a ModelError holding the exception's message and its
   traceback text, so nothing Python-side crosses into LAMMPS.
------------------------------------------------------------------------- */

#include "gnn_model.h"

#include "gnn_features.h"

#include <pybind11/embed.h>
#include <pybind11/numpy.h>

#include <dlfcn.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#ifndef LMPGNN_PYTHON_EXECUTABLE
#define LMPGNN_PYTHON_EXECUTABLE ""
#endif

namespace py = pybind11;

namespace LMPGNN {
namespace {

  bool python_finalizing()
  {
#if PY_VERSION_HEX >= 0x030D0000
    return Py_IsFinalizing();
#else
    return _Py_IsFinalizing();
#endif
  }

  bool is_file(const std::string &path)
  {
    struct stat st;
    return !path.empty() && stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
  }

  std::string dirname(const std::string &path)
  {
    const auto slash = path.find_last_of('/');
    if (slash == std::string::npos) return ".";
    return slash == 0 ? "/" : path.substr(0, slash);
  }

  // directory of this library (the installed lmp_gnn package directory)
  std::string library_directory()
  {
    Dl_info info;
    if (dladdr(reinterpret_cast<void *>(&library_directory), &info) && info.dli_fname)
      return dirname(info.dli_fname);
    return ".";
  }

  // the interpreter of the environment lmp_gnn is installed in
  std::string environment_python(const std::string &site_dir)
  {
    // <prefix>/lib/python3.X/site-packages -> <prefix>
    const std::string prefix = dirname(dirname(dirname(site_dir)));
    const std::string versioned =
        "python" + std::to_string(PY_MAJOR_VERSION) + "." + std::to_string(PY_MINOR_VERSION);
    for (const std::string &name : {versioned, std::string("python3")}) {
      const std::string exe = prefix + "/bin/" + name;
      if (is_file(exe)) return exe;
    }
    return LMPGNN_PYTHON_EXECUTABLE;
  }

  // start the embedded interpreter (LAMMPS not inside Python); returns an error or ""
  std::string start_interpreter()
  {
    const std::string site_dir = dirname(library_directory());
    const std::string exe = environment_python(site_dir);
    PyConfig config;
    PyConfig_InitPythonConfig(&config);
    config.install_signal_handlers = 0;
    config.parse_argv = 0;
    PyStatus status = PyStatus_Ok();
    const char *argv[] = {"lmp"};
    if (!exe.empty()) status = PyConfig_SetBytesString(&config, &config.program_name, exe.c_str());
    if (!PyStatus_Exception(status))
      status = PyConfig_SetBytesArgv(&config, 1, const_cast<char *const *>(argv));
    if (!PyStatus_Exception(status)) status = Py_InitializeFromConfig(&config);
    PyConfig_Clear(&config);
    if (PyStatus_Exception(status))
      return std::string("cannot start an embedded Python interpreter (program ") +
          (exe.empty() ? "default" : exe) + "): " + (status.err_msg ? status.err_msg : "unknown error");
    std::string err;
    try {
      auto sys_path = py::module_::import("sys").attr("path");
      if (!sys_path.contains(py::str(site_dir)))
        py::module_::import("site").attr("addsitedir")(site_dir);
    } catch (py::error_already_set &e) {
      err = std::string("embedded Python: cannot add ") + site_dir + " to sys.path: " + e.what();
    }
    PyEval_SaveThread();    // every later call takes the GIL with gil_scoped_acquire
    return err;
  }

  // the message of a Python exception; with `traceback`, "Type: message" and the traceback
  // text on the following lines (lmp_gnn.coupling.bridge.format_exception; GIL held)
  std::string python_error(py::error_already_set &e, bool traceback)
  {
    try {
      if (!traceback) return py::str(e.value()).cast<std::string>();
      py::object trace = e.trace() ? py::reinterpret_borrow<py::object>(e.trace()) : py::none();
      return py::module_::import("lmp_gnn.coupling.bridge")
          .attr("format_exception")(e.value(), trace)
          .cast<std::string>();
    } catch (std::exception &) {
      return e.what();
    }
  }

  class PythonModel : public GNNModel {
   public:
    PythonModel(const std::string &spec, int nthreads) : spec_(spec)
    {
      py::gil_scoped_acquire gil;
      try {
        auto bridge = py::module_::import("lmp_gnn.coupling.bridge");
        output_error_ = bridge.attr("ModelOutputError");
        exit_error_ = bridge.attr("ProcessExitError");
        model_ = bridge.attr("load_model_spec")(spec, nthreads);
        // the metadata as the strings of an exported file, checked by the one parser of both backends
        std::map<std::string, std::string> raw;
        for (auto item : model_.attr("info")().cast<py::dict>())
          raw[py::str(item.first).cast<std::string>()] = py::str(item.second).cast<std::string>();
        info_ = parse_metadata("Python model " + spec, raw);
        description_ = model_.attr("description").cast<std::string>();
        float32_ = info_.dtype == "float32";
        f64_ = py::dtype::of<double>();
        f32_ = py::dtype::of<float>();
        i64_ = py::dtype::of<int64_t>();
        base_ = py::none();
      } catch (py::error_already_set &e) {
        bool ours = false;    // lmp_gnn.coupling.bridge.BridgeError: a message of ours, no traceback
        try {
          ours = e.matches(py::module_::import("lmp_gnn.coupling.bridge").attr("BridgeError"));
        } catch (std::exception &) {
        }
        std::string msg = ours ? python_error(e, false)
                               : "Python model " + spec + " could not be loaded: " + python_error(e, true);
        release();
        throw ModelError(msg);
      } catch (ModelError &) {
        release();
        throw;
      } catch (std::exception &e) {
        release();
        throw ModelError("Python model " + spec + " could not be loaded: " + e.what());
      }
    }

    ~PythonModel() override { release(); }

    std::string description() const override { return description_; }

    void compute(int64_t n, const double *node_features, int64_t nedges, const int64_t *edge_index,
                 const double *edge_features, double *accel) override
    {
      const int64_t nf = 2 * info_.history;
      py::gil_scoped_acquire gil;
      try {
        py::array x, e;
        if (float32_) {
          node32_.assign(node_features, node_features + n * nf);
          edge32_.assign(edge_features, edge_features + nedges * EDGE_DIM);
          x = view(f32_, {n, nf}, node32_.data());
          e = view(f32_, {nedges, (int64_t) EDGE_DIM}, edge32_.data());
        } else {
          x = view(f64_, {n, nf}, node_features);
          e = view(f64_, {nedges, (int64_t) EDGE_DIM}, edge_features);
        }
        py::array ei = view(i64_, {2, nedges}, edge_index);
        py::object out = model_(x, ei, e);
        // lmp_gnn.coupling.bridge.check_output made it a C-contiguous [n, 2] array of the model dtype;
        // checked again here before any memory is read
        auto a = py::array::ensure(out);
        if (!a || a.ndim() != 2 || a.shape(0) != n || a.shape(1) != info_.dimension ||
            !(a.flags() & py::array::c_style) || !a.dtype().is(float32_ ? f32_ : f64_))
          throw ModelError("Python model " + spec_ + ": the bridge returned no C-contiguous [" +
                           std::to_string(n) + ", 2] " + info_.dtype + " array");
        const int64_t count = n * info_.dimension;
        if (float32_) {
          const float *src = static_cast<const float *>(a.data());
          for (int64_t k = 0; k < count; k++) accel[k] = src[k];
        } else {
          std::memcpy(accel, a.data(), sizeof(double) * count);
        }
      } catch (py::error_already_set &e) {
        // a wrong output, or os._exit() caught by the bridge: a message of ours, no traceback
        if (e.matches(output_error_) || e.matches(exit_error_))
          throw ModelError("Python model " + spec_ + ": " + python_error(e, false));
        throw ModelError("Python model " + spec_ + " raised " + python_error(e, true));
      } catch (ModelError &) {
        throw;
      } catch (std::exception &e) {
        throw ModelError("Python model " + spec_ + ": " + e.what());
      }
    }

   private:
    // a read-only numpy view of memory owned by the fix or by this backend
    py::array view(const py::dtype &dt, std::vector<py::ssize_t> shape, const void *ptr)
    {
      py::array a(dt, std::move(shape), {}, ptr, base_);
      py::detail::array_proxy(a.ptr())->flags &= ~py::detail::npy_api::NPY_ARRAY_WRITEABLE_;
      return a;
    }

    // drop the Python objects: with the GIL while Python is alive, leaked at its finalisation
    void release()
    {
      py::object *objs[] = {&model_, &output_error_, &exit_error_, &base_};
      py::dtype *dts[] = {&f64_, &f32_, &i64_};
      if (!Py_IsInitialized() || python_finalizing()) {
        for (auto *o : objs) o->release();
        for (auto *d : dts) d->release();
        return;
      }
      py::gil_scoped_acquire gil;
      for (auto *o : objs) *o = py::object();
      for (auto *d : dts) *d = py::dtype();
    }

    std::string spec_, description_;
    py::object model_, output_error_, exit_error_, base_;
    py::dtype f64_, f32_, i64_;
    bool float32_ = false;
    std::vector<float> node32_, edge32_;
  };

}    // namespace
}    // namespace LMPGNN

extern "C" __attribute__((visibility("default"))) LMPGNN::GNNModel *
lmpgnn_load_python(const char *spec, const char *device, int nthreads, char *error, int errlen)
{
  try {
    if (device && std::strcmp(device, "cpu") != 0)
      throw LMPGNN::ModelError(std::string("the python backend runs the model where its factory put "
                                           "it; keyword device ") + device +
                               " applies to TorchScript models only");
    // Python extension modules resolve the C API from the global namespace: make the libpython
    // this library was linked against global (the fix dlopen()ed us RTLD_LOCAL)
    Dl_info info;
    if (dladdr(reinterpret_cast<void *>(&Py_IsInitialized), &info) && info.dli_fname)
      dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_GLOBAL);
    static std::string start_error;
    if (!Py_IsInitialized()) start_error = LMPGNN::start_interpreter();
    if (!start_error.empty()) throw LMPGNN::ModelError(start_error);
    return new LMPGNN::PythonModel(spec, nthreads);
  } catch (std::exception &e) {
    // a long traceback keeps its first line (the exception) and its end (the innermost frames)
    std::string msg = e.what();
    const std::size_t room = errlen > 200 ? (std::size_t) errlen - 1 : 0;
    if (room && msg.size() > room) {
      const std::string first = msg.substr(0, std::min(msg.find('\n'), room / 2));
      msg = first + "\n  ...\n" + msg.substr(msg.size() - (room - first.size() - 7));
    }
    std::snprintf(error, errlen, "%s", msg.c_str());
  } catch (...) {
    std::snprintf(error, errlen, "unknown error while loading Python model %s", spec);
  }
  return nullptr;
}
