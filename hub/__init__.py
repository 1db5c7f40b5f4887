"""A local-first smart-home hub for homes where older people live."""

__version__ = "0.1.0"
