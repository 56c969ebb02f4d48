/* -*- c++ -*- ----------------------------------------------------------
   lmp-gnn: the global restart record of fix gnn/rollout, a list of named fields.

   Layout (native byte order, as LAMMPS restart files are):

       double format                       RESTART_FORMAT (4); formats 1-3 were 21-23 doubles
                                           read by position, the first of them the format too
       double nfields
       nfields x { char name[24]; double value; }    name NUL-padded, at most 23 characters

   A class binds each field it persists to one of its members, by name, once (bind_restart);
   the same binding writes the record and reads it back, each field looked up by its name, so
   the order of the fields and fields added in later formats do not matter to a reader.
   Integers are stored as doubles (exact up to 2^53).

   No LAMMPS and no torch in here.
------------------------------------------------------------------------- */

#ifndef LMP_GNN_RESTART_RECORD_H
#define LMP_GNN_RESTART_RECORD_H

#include <cstdint>
#include <string>
#include <vector>

namespace LMPGNN {

constexpr int RESTART_FORMAT = 4;
constexpr int RESTART_NAME_LENGTH = 24;

class RestartRecord {
 public:
  // bind a field to a member (the name at most RESTART_NAME_LENGTH - 1 characters)
  void field(const char *name, int &value);
  void field(const char *name, int64_t &value);
  void field(const char *name, double &value);

  // the record of the bound fields' current values
  std::vector<char> write() const;

  // the format number a record (of any format) starts with
  static double format_of(const char *buf);
  // the value of one field of a record in the current format; false if it has no such field
  static bool lookup(const char *buf, const char *name, double &value);
  // every bound field set from the record, by name; returns the name of the first bound field
  // the record lacks (those before it are set), or "" when all were found
  std::string read(const char *buf) const;

 private:
  enum Kind { INT, INT64, DOUBLE };
  struct Binding {
    std::string name;
    Kind kind;
    void *member;
  };
  std::vector<Binding> bindings;
  void bind(const char *name, Kind kind, void *member);
};

}    // namespace LMPGNN

#endif
