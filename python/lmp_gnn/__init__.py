"""lmp-gnn: learned graph-network simulators and true LAMMPS molecular dynamics in one deck.

Units are LAMMPS LJ units throughout (distance: mean bond length = 1, mass 1); one
learned step ("snapshot step") is dimensionless time Δt = 1. See docs/ for the formats.
"""

from pathlib import Path

__version__ = "0.1.0"

# the model `lmp-gnn demo --pretrained` uses; how it was made: data/README.md beside this file
SHIPPED_MODEL = Path(__file__).resolve().parent / "data" / "demo_model.pt"
