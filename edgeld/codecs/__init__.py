"""Landmarks <-> heatmaps, numpy only: the one reference used by training and the runtime."""
from edgeld.codecs.heatmap import SoftmaxHeatmapCodec

__all__ = ["SoftmaxHeatmapCodec"]
