# The Python backend of fix gnn/rollout: libgnn_python.so (gnn_python_backend.cpp, pybind11
# embed), dlopen()ed by the fix for `fix ... gnn/rollout python SPEC`, installed next to the
# plugin. Included from csrc/CMakeLists.txt after pybind11 and the LAMMPS/MPI paths are known.
#
# libpython: with a shared-library Python (Py_ENABLE_SHARED, e.g. pyenv --enable-shared, distro
# pythons' libpython3.X.so) the backend links it, so `lmp` can embed the interpreter; inside a
# Python process the same library is already loaded. With a static-only Python there is no
# libpython to embed: the backend is built unlinked and works only when LAMMPS runs inside Python.
find_package(Python 3.10 REQUIRED COMPONENTS Interpreter Development.Module Development.Embed)
execute_process(
  COMMAND "${Python_EXECUTABLE}" -c "import sysconfig; print(int(bool(sysconfig.get_config_var('Py_ENABLE_SHARED'))))"
  OUTPUT_VARIABLE LMPGNN_PYTHON_SHARED OUTPUT_STRIP_TRAILING_WHITESPACE)

add_library(gnn_python SHARED gnn_python_backend.cpp)
target_include_directories(gnn_python PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
# the metadata parser of the TorchScript backend (gnn_metadata.cpp)
target_link_libraries(gnn_python PRIVATE gnn_metadata)
target_compile_definitions(gnn_python PRIVATE LMPGNN_PYTHON_EXECUTABLE="${Python_EXECUTABLE}")
target_link_libraries(gnn_python PRIVATE lmpgnn_warnings)
# pybind11 internals stay private to this library; only lmpgnn_load_python is exported
set_target_properties(gnn_python PROPERTIES CXX_VISIBILITY_PRESET hidden VISIBILITY_INLINES_HIDDEN ON)
if(LMPGNN_PYTHON_SHARED)
  target_link_libraries(gnn_python PRIVATE pybind11::embed Python::Python)
  list(GET Python_LIBRARY_DIRS 0 _lmpgnn_pylibdir)
  set_target_properties(gnn_python PROPERTIES
    INSTALL_RPATH "${_lmpgnn_pylibdir}" BUILD_RPATH "${_lmpgnn_pylibdir}")
else()
  message(STATUS "lmp-gnn: static Python: the python backend works only with LAMMPS inside Python")
  target_link_libraries(gnn_python PRIVATE pybind11::headers)
endif()

if(DEFINED SKBUILD_PROJECT_NAME)
  install(TARGETS gnn_python LIBRARY DESTINATION lmp_gnn RUNTIME DESTINATION lmp_gnn)
endif()
