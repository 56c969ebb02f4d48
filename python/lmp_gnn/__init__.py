"""lmp-gnn: learned graph-network simulators and true LAMMPS molecular dynamics in one deck.

Units are LAMMPS LJ units throughout (distance: mean bond length = 1, mass 1); one
learned step ("snapshot step") is dimensionless time Δt = 1. See docs/ for the formats.
"""

__version__ = "0.1.0"
