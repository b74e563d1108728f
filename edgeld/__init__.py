"""edgeld: anatomical landmark detection distilled for edge hardware."""

__version__ = "0.1.0"
