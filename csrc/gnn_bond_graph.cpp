/* ----------------------------------------------------------------------
   lmp-gnn: the bond graph of fix gnn/rollout on one MPI rank (see gnn_bond_graph.h)
------------------------------------------------------------------------- */

#include "gnn_bond_graph.h"

#include "gnn_features.h"

#include "atom.h"
#include "bond.h"
#include "comm.h"
#include "domain.h"
#include "error.h"
#include "fix.h"
#include "force.h"
#include "memory.h"
#include "neighbor.h"

#include <algorithm>
#include <cmath>

using namespace LAMMPS_NS;

/* ---------------------------------------------------------------------- */

GNNBondGraph::GNNBondGraph(LAMMPS *lmp, Fix *owner, int nlayers) :
    Pointers(lmp), fix(owner), layers(nlayers), partner_comm(false), maxpartner(0),
    npartner(nullptr), partner_tag(nullptr), partner_rest(nullptr), partner_overflow(0), nown_(0),
    nedges_all_(0), max_bond_length_(0.0), max_rest_length_(0.0), min_rest_length_(0.0)
{
}

GNNBondGraph::~GNNBondGraph()
{
  memory->destroy(npartner);
  memory->destroy(partner_tag);
  memory->destroy(partner_rest);
}

/* ----------------------------------------------------------------------
   size of the bond-partner tables: the largest number of 1-2 neighbors of any atom
------------------------------------------------------------------------- */

void GNNBondGraph::init()
{
  int mymax = 0, newmax = 0;
  if (atom->nspecial)
    for (int i = 0; i < atom->nlocal; i++) mymax = std::max(mymax, atom->nspecial[i][0]);
  MPI_Allreduce(&mymax, &newmax, 1, MPI_INT, MPI_MAX, world);
  newmax = std::max(newmax, 1);
  if (newmax != maxpartner) {
    maxpartner = newmax;
    memory->destroy(npartner);
    memory->destroy(partner_tag);
    memory->destroy(partner_rest);
    memory->create(npartner, atom->nmax, "gnn/rollout:npartner");
    memory->create(partner_tag, atom->nmax, maxpartner, "gnn/rollout:partner_tag");
    memory->create(partner_rest, atom->nmax, maxpartner, "gnn/rollout:partner_rest");
  }
}

void GNNBondGraph::grow(int nmax)
{
  if (maxpartner <= 0) return;
  memory->grow(npartner, nmax, "gnn/rollout:npartner");
  memory->grow(partner_tag, nmax, maxpartner, "gnn/rollout:partner_tag");
  memory->grow(partner_rest, nmax, maxpartner, "gnn/rollout:partner_rest");
}

void GNNBondGraph::build()
{
  build_partners();
  build_graph();
}

/* ----------------------------------------------------------------------
   bond partners (atom ID, rest length) of every group atom, owned and ghost
------------------------------------------------------------------------- */

void GNNBondGraph::add_partner(int i, tagint t, double rest)
{
  for (int p = 0; p < npartner[i]; p++)
    if (partner_tag[i][p] == t) return;
  if (npartner[i] >= maxpartner) {
    partner_overflow = 1;
    return;
  }
  partner_tag[i][npartner[i]] = t;
  partner_rest[i][npartner[i]] = rest;
  npartner[i]++;
}

void GNNBondGraph::build_partners()
{
  const int nall = atom->nlocal + atom->nghost;
  const int *mask = atom->mask;
  const tagint *tag = atom->tag;
  const int groupbit = fix->groupbit;
  for (int i = 0; i < nall; i++) npartner[i] = 0;
  partner_overflow = 0;

  int **bondlist = neighbor->bondlist;
  const int nbondlist = neighbor->nbondlist;
  int badtype = 0;
  for (int n = 0; n < nbondlist; n++) {
    const int i1 = bondlist[n][0], i2 = bondlist[n][1], type = bondlist[n][2];
    if (!(mask[i1] & groupbit) || !(mask[i2] & groupbit)) continue;
    const double rest = force->bond->equilibrium_distance(type);
    if (!(rest > 0.0)) badtype = type;
    add_partner(i1, tag[i2], rest);
    add_partner(i2, tag[i1], rest);
  }
  MPI_Allreduce(MPI_IN_PLACE, &badtype, 1, MPI_INT, MPI_MAX, world);    // (ERROR on every rank)
  if (badtype)
    error->all(FLERR, "Fix gnn/rollout: bond type {} has rest length {}; l_r must be positive",
               badtype, force->bond->equilibrium_distance(badtype));

  partner_comm = true;
  comm->reverse_comm(fix);    // partners found through ghost atoms -> their owners
  comm->forward_comm(fix);    // complete tables of the owners -> their ghost atoms
  partner_comm = false;
  MPI_Allreduce(MPI_IN_PLACE, &partner_overflow, 1, MPI_INT, MPI_MAX, world);
  if (partner_overflow)
    error->all(FLERR, "Fix gnn/rollout: an atom has more than {} bond partners, more than its "
               "special list says", maxpartner);
}

/* ----------------------------------------------------------------------
   graph of this rank: owned group atoms first, then ghost atoms up to k bonds away;
   edges into every node closer than k bonds, messages flow sender -> receiver
------------------------------------------------------------------------- */

void GNNBondGraph::build_graph()
{
  const int nlocal = atom->nlocal;
  const int nall = nlocal + atom->nghost;
  const int *mask = atom->mask;
  const tagint *tag = atom->tag;
  const int groupbit = fix->groupbit;
  double **x = atom->x;

  node_of.assign(nall, -1);
  node_atom_.clear();
  for (int i = 0; i < nlocal; i++)
    if (mask[i] & groupbit) {
      node_of[i] = (int) node_atom_.size();
      node_atom_.push_back(i);
    }
  nown_ = (int) node_atom_.size();

  std::vector<int64_t> senders, receivers;
  senders.reserve(edge_rest_.capacity() / 2 + 16);
  receivers.reserve(edge_rest_.capacity() / 2 + 16);
  edge_rest_.clear();
  const int depth = std::max(layers, 1);
  const double box[2] = {domain->xprd, domain->yprd};
  std::size_t begin = 0, end = node_atom_.size();
  bigint nown_edges = 0, missing = 0;
  tagint missing_from = 0, missing_to = 0;
  double maxlen = 0.0, maxrest = 0.0, minrest = HUGE_VAL;
  for (int level = 0; level < depth; level++) {
    for (std::size_t k = begin; k < end; k++) {
      const int i = node_atom_[k];
      for (int p = 0; p < npartner[i]; p++) {
        const int s = atom->map(partner_tag[i][p]);
        maxrest = std::max(maxrest, partner_rest[i][p]);
        minrest = std::min(minrest, partner_rest[i][p]);
        if (s < 0) {
          if (!missing) missing_from = tag[i], missing_to = partner_tag[i][p];
          missing++;
          continue;
        }
        if (node_of[s] < 0) {
          node_of[s] = (int) node_atom_.size();
          node_atom_.push_back(s);
        }
        senders.push_back(node_of[s]);
        receivers.push_back((int64_t) k);
        edge_rest_.push_back(partner_rest[i][p]);
        if (level == 0) {
          double d[LMPGNN::EDGE_DIM];
          LMPGNN::edge_feature(x[i][0] - x[s][0], x[i][1] - x[s][1], box, 1.0, d);
          maxlen = std::max(maxlen, d[2]);
          nown_edges++;
        }
      }
    }
    begin = end;
    end = node_atom_.size();
  }
  const std::size_t nedges = senders.size();
  edge_index_.resize(2 * nedges);
  std::copy(senders.begin(), senders.end(), edge_index_.begin());
  std::copy(receivers.begin(), receivers.end(), edge_index_.begin() + nedges);

  // (the shortest rest length enters negated: one reduction for all three)
  double lens[3] = {maxlen, maxrest, -minrest}, lens_all[3];
  MPI_Allreduce(lens, lens_all, 3, MPI_DOUBLE, MPI_MAX, world);
  max_bond_length_ = lens_all[0];
  max_rest_length_ = lens_all[1];
  min_rest_length_ = std::isfinite(lens_all[2]) ? -lens_all[2] : 0.0;
  bigint counts[2] = {nown_edges, missing}, counts_all[2];
  MPI_Allreduce(counts, counts_all, 2, MPI_LMP_BIGINT, MPI_SUM, world);
  nedges_all_ = counts_all[0];
  if (counts_all[1]) {
    tagint pair[2] = {missing_from, missing_to}, pair_all[2];
    MPI_Allreduce(pair, pair_all, 2, MPI_LMP_TAGINT, MPI_MAX, world);
    const double need = depth * std::max(lens_all[0], lens_all[1]) * 1.1 + neighbor->skin;
    error->all(FLERR,
               "Fix gnn/rollout: atom {} is bonded to atom {}, which is not a ghost atom on its "
               "MPI rank; the model's {} message-passing layer(s) need ghost atoms {} bond(s) "
               "deep: use comm_modify cutoff {:.4g} (or larger)",
               pair_all[0], pair_all[1], layers, depth, need);
  }
}

/* ----------------------------------------------------------------------
   the ghost shell must reach k bonds: compare the communication cutoff with
   k times the longest bond of the group
------------------------------------------------------------------------- */

void GNNBondGraph::check_halo() const
{
  const int depth = std::max(layers, 1);
  const double need = depth * max_bond_length_;
  const double cut = comm->get_comm_cutoff();
  if (cut < need)
    error->all(FLERR,
               "Fix gnn/rollout: the model's {} message-passing layer(s) need ghost atoms {} "
               "bond(s) deep, {:.4g} with the longest bond {:.4g}, but the communication cutoff "
               "is {:.4g}: use comm_modify cutoff {:.4g} (or larger)",
               layers, depth, need, max_bond_length_, cut, need * 1.1 + neighbor->skin);
}

/* ----------------------------------------------------------------------
   forward comm: complete tables of the owners -> their ghost atoms
------------------------------------------------------------------------- */

int GNNBondGraph::pack_forward_comm(int n, int *list, double *buf) const
{
  int m = 0;
  for (int ii = 0; ii < n; ii++) {
    const int j = list[ii];
    buf[m++] = npartner[j];
    for (int p = 0; p < npartner[j]; p++) {
      buf[m++] = ubuf(partner_tag[j][p]).d;
      buf[m++] = partner_rest[j][p];
    }
  }
  return m;
}

void GNNBondGraph::unpack_forward_comm(int n, int first, const double *buf)
{
  int m = 0;
  const int last = first + n;
  for (int i = first; i < last; i++) {
    npartner[i] = static_cast<int>(buf[m++]);
    for (int p = 0; p < npartner[i]; p++) {
      partner_tag[i][p] = (tagint) ubuf(buf[m++]).i;
      partner_rest[i][p] = buf[m++];
    }
  }
}

/* ----------------------------------------------------------------------
   reverse comm: partners found through a ghost atom are merged into its owner
------------------------------------------------------------------------- */

int GNNBondGraph::pack_reverse_comm(int n, int first, double *buf) const
{
  int m = 0;
  const int last = first + n;
  for (int i = first; i < last; i++) {
    buf[m++] = npartner[i];
    for (int p = 0; p < npartner[i]; p++) {
      buf[m++] = ubuf(partner_tag[i][p]).d;
      buf[m++] = partner_rest[i][p];
    }
  }
  return m;
}

void GNNBondGraph::unpack_reverse_comm(int n, int *list, const double *buf)
{
  int m = 0;
  for (int ii = 0; ii < n; ii++) {
    const int j = list[ii];
    const int count = static_cast<int>(buf[m++]);
    for (int p = 0; p < count; p++) {
      const auto t = (tagint) ubuf(buf[m++]).i;
      const double rest = buf[m++];
      add_partner(j, t, rest);
    }
  }
}

/* ---------------------------------------------------------------------- */

double GNNBondGraph::memory_usage() const
{
  double bytes =
      (double) atom->nmax * (sizeof(int) + maxpartner * (sizeof(tagint) + sizeof(double)));
  bytes += (double) (node_atom_.capacity() + node_of.capacity()) * sizeof(int);
  bytes += (double) edge_index_.capacity() * sizeof(int64_t);
  bytes += (double) edge_rest_.capacity() * sizeof(double);
  return bytes;
}
