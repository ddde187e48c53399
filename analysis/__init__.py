"""RepLens analysis library: pure Python (torch, numpy, scipy), no Django or Celery.

Everything a worker computes lives here: safe checkpoint loading, dataset readers, activation
extraction and the representation measures. Functions report progress through a callback and
raise :class:`analysis.errors.InputError` with a message meant for the user when an input
cannot be used.
"""

__version__ = "0.1.0"
