"""Evaluation: errors and Poisson's ratio against true MD beside the baseline,
and plots.
"""
