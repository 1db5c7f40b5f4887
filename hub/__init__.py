"""A local-first smart-home hub for homes where older people live."""

from hub import native

__version__ = "0.1.0"

native.guard()
