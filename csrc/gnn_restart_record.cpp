/* ----------------------------------------------------------------------
   lmp-gnn: the global restart record of fix gnn/rollout (see gnn_restart_record.h)
------------------------------------------------------------------------- */

#include "gnn_restart_record.h"

#include <cstring>
#include <stdexcept>

using namespace LMPGNN;

namespace {
constexpr std::size_t ENTRY = RESTART_NAME_LENGTH + sizeof(double);
constexpr std::size_t HEADER = 2 * sizeof(double);

double read_double(const char *p)
{
  double value;
  std::memcpy(&value, p, sizeof(double));
  return value;
}
}    // namespace

void RestartRecord::bind(const char *name, Kind kind, void *member)
{
  if (std::strlen(name) >= (std::size_t) RESTART_NAME_LENGTH)
    throw std::invalid_argument(std::string("restart field name too long: ") + name);
  bindings.push_back({name, kind, member});
}

void RestartRecord::field(const char *name, int &value)
{
  bind(name, INT, &value);
}

void RestartRecord::field(const char *name, int64_t &value)
{
  bind(name, INT64, &value);
}

void RestartRecord::field(const char *name, double &value)
{
  bind(name, DOUBLE, &value);
}

std::vector<char> RestartRecord::write() const
{
  std::vector<char> out(HEADER + bindings.size() * ENTRY, '\0');
  const double header[2] = {(double) RESTART_FORMAT, (double) bindings.size()};
  std::memcpy(out.data(), header, HEADER);
  char *p = out.data() + HEADER;
  for (const auto &b : bindings) {
    double value = 0.0;
    switch (b.kind) {
      case INT:
        value = (double) *static_cast<const int *>(b.member);
        break;
      case INT64:
        value = (double) *static_cast<const int64_t *>(b.member);
        break;
      case DOUBLE:
        value = *static_cast<const double *>(b.member);
        break;
    }
    std::memcpy(p, b.name.c_str(), b.name.size());
    std::memcpy(p + RESTART_NAME_LENGTH, &value, sizeof(double));
    p += ENTRY;
  }
  return out;
}

double RestartRecord::format_of(const char *buf)
{
  return read_double(buf);
}

bool RestartRecord::lookup(const char *buf, const char *name, double &value)
{
  const auto nfields = (int64_t) read_double(buf + sizeof(double));
  const char *p = buf + HEADER;
  for (int64_t f = 0; f < nfields; f++, p += ENTRY)
    if (std::strncmp(p, name, RESTART_NAME_LENGTH) == 0) {
      value = read_double(p + RESTART_NAME_LENGTH);
      return true;
    }
  return false;
}

std::string RestartRecord::read(const char *buf) const
{
  for (const auto &b : bindings) {
    double value;
    if (!lookup(buf, b.name.c_str(), value)) return b.name;
    switch (b.kind) {
      case INT:
        *static_cast<int *>(b.member) = (int) value;
        break;
      case INT64:
        *static_cast<int64_t *>(b.member) = (int64_t) value;
        break;
      case DOUBLE:
        *static_cast<double *>(b.member) = value;
        break;
    }
  }
  return "";
}
