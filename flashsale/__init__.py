"""flashsale: a real-time order engine for livestream flash sales."""

__version__ = "0.1.0"
