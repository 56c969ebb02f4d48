"""Coupling with LAMMPS: creating instances, the Python bridge, the driver,
rollouts inside LAMMPS, importing a user's own runs.
"""
