"""The torch-free core every other package builds on: errors, atomic file I/O, the letterbox, the
heatmap codec, the model contract and the artifact manifest. numpy + Pillow only.

Nothing is re-exported here: importing `edgeld.core.contract` must not load numpy or Pillow, so that
`edgeld.config` (standard library only) can take the contract's specs from it.
"""
