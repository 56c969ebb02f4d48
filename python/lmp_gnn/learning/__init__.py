"""Learning the step: data sets, the GNN, training and its configuration,
checkpoints and TorchScript export.
"""
