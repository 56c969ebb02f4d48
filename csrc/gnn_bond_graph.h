/* -*- c++ -*- ----------------------------------------------------------
   lmp-gnn: the bond graph of fix gnn/rollout on one MPI rank (docs/fix_gnn_rollout.md, "MPI").

   The system adaptor between LAMMPS and the model, kept apart from the fix:

   * bond-partner tables: for every group atom, owned or ghost, the atom IDs and rest lengths
     l_r of its bonds to other group atoms, built from the bond list after every neighbor list
     build and completed across ranks (reverse comm: partners found through a ghost atom to its
     owner; forward comm: the owners' complete tables to their ghost atoms);
   * the graph handed to the model: the owned group atoms first (nodes 0 .. nown-1), then the
     ghost atoms up to k bonds away (k = the model's message-passing layers), edges into every
     node closer than k bonds, messages flowing sender -> receiver. Only the accelerations of
     the owned nodes are used, so they are exact whenever the ghost shell is k bonds deep;
   * the halo check: the communication cutoff against k times the longest bond.

   The fix owning the graph is the target of LAMMPS's comm calls: while communicating() is
   true, its pack/unpack_forward_comm hand over to this class, and its reverse comm always does.
------------------------------------------------------------------------- */

#ifndef LMP_GNN_BOND_GRAPH_H
#define LMP_GNN_BOND_GRAPH_H

#include "pointers.h"

#include <cstdint>
#include <vector>

namespace LAMMPS_NS {

class GNNBondGraph : protected Pointers {
 public:
  GNNBondGraph(class LAMMPS *, class Fix *owner, int layers);
  ~GNNBondGraph() override;

  void init();                  // size the partner tables: most 1-2 neighbors of any atom
  void grow(int nmax);          // per-atom tables follow atom->nmax
  void build();                 // partner tables, then the graph (after a neighbor list build)
  void check_halo() const;      // error unless the ghost shell reaches k bonds
  int comm_size() const { return 1 + 2 * maxpartner; }    // values per atom in a comm pass

  bool communicating() const { return partner_comm; }
  int pack_forward_comm(int n, int *list, double *buf) const;
  void unpack_forward_comm(int n, int first, const double *buf);
  int pack_reverse_comm(int n, int first, double *buf) const;
  void unpack_reverse_comm(int n, int *list, const double *buf);

  // the graph of this rank
  int nown() const { return nown_; }                             // owned group atoms
  const std::vector<int> &node_atom() const { return node_atom_; }    // node -> local atom
  const std::vector<int64_t> &edge_index() const { return edge_index_; }    // [2][E]
  const std::vector<double> &edge_rest() const { return edge_rest_; }      // [E] l_r
  bigint nedges_all() const { return nedges_all_; }    // directed edges of the whole group
  double max_bond_length() const { return max_bond_length_; }
  double max_rest_length() const { return max_rest_length_; }    // longest l_r of the group
  double min_rest_length() const { return min_rest_length_; }    // shortest l_r of the group
  double memory_usage() const;

 private:
  class Fix *fix;      // the fix whose group the graph covers (target of the comm calls)
  int layers;          // k, message-passing layers of the model
  bool partner_comm;   // a comm pass of the partner tables is under way

  int maxpartner;
  int *npartner;
  tagint **partner_tag;
  double **partner_rest;
  int partner_overflow;

  int nown_;
  std::vector<int> node_atom_;
  std::vector<int> node_of;         // local atom index -> node or -1
  std::vector<int64_t> edge_index_;
  std::vector<double> edge_rest_;
  bigint nedges_all_;
  double max_bond_length_;          // longest bond of the group at the last build
  double max_rest_length_, min_rest_length_;    // extreme rest lengths l_r at the last build

  void build_partners();
  void build_graph();
  void add_partner(int i, tagint t, double rest);
};

}    // namespace LAMMPS_NS

#endif
