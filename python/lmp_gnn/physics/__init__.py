"""Networks and their physics: generation, Poisson tuning, linear response,
compression MD, trajectories, Poisson's ratio.
"""
