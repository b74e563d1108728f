"""Training loops (torch): heatmap networks on a landmark dataset, with checkpoints and resume."""
