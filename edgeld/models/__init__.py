"""Landmark networks (torch). Every model exposes forward_features / forward_intermediates /
forward_head so distillation can tap features without hooks.

This package's __init__ imports nothing heavy: `edgeld.models.registry` is torch-free; import
`edgeld.models.landmarknet` for the networks.
"""
