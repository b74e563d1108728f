"""The torch side below train/ and distill/: datasets that yield tensors and the losses both share.

Imports torch, the torch-free data readers and the codec; never train/, distill/ or the CLI, so
the training loops and the distillation tasks can both build on it without importing each other.
"""
