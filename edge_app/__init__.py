"""wbc-edge on the device: bundle contract, preprocessing, runtimes. Never imports TensorFlow."""

__version__ = "0.1.0"
