"""The learned step: the feature contract, the physical rules of a step, the
reference rollout and exported-model metadata.
"""
