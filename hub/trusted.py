"""Pydantic models built from values the hub produced and checked itself, without validation."""

from __future__ import annotations

from typing import Any, Final, TypeVar

from pydantic import BaseModel

M = TypeVar("M", bound=BaseModel)

# The four slots pydantic keeps per model, set through their descriptors: a third of the
# cost of object.__setattr__ on each, on a path that runs for every message a home sends.
# Final: compiled, each is a C static rather than a lookup in the module's dict (a third
# less per model).
_new: Final = object.__new__  # BaseModel defines no __new__ of its own
_set_dict: Final = BaseModel.__dict__["__dict__"].__set__
_set_fields_set: Final = BaseModel.__dict__["__pydantic_fields_set__"].__set__
_set_extra: Final = BaseModel.__dict__["__pydantic_extra__"].__set__
_set_private: Final = BaseModel.__dict__["__pydantic_private__"].__set__


def trusted(model: type[M], fields: dict[str, Any], fields_set: set[str]) -> M:
    """A model built from values the hub produced and checked itself, without pydantic's validation.

    `fields` holds every field of the model, defaults included, in declaration order, and
    `fields_set` the ones a validating call would have been given. Only for hot paths whose
    tests compare the result with the validated model.

    The models built from one `fields_set` share it rather than each holding a copy (one
    object fewer for the garbage collector to track per model kept): the models are frozen,
    so nothing adds to it, and `model_copy` copies it before applying an update.
    """
    obj = _new(model)
    _set_dict(obj, fields)
    _set_fields_set(obj, fields_set)
    _set_extra(obj, None)
    _set_private(obj, None)
    return obj


# Every set of given field names seen, by value: one set object for all the models built
# from the same names. Bounded by the models' fields, not by what devices send.
_FIELDS_SETS: dict[frozenset[str], set[str]] = {}


def share_fields_set(model: BaseModel) -> None:
    """Make a validated model share its set of given field names with the models given the same names.

    Pydantic keeps one such set per model, as large as the model's own field dict: the most of
    a home's memory after the fields themselves. Frozen models never add to it (see `trusted`).
    """
    fields = model.__pydantic_fields_set__
    shared = _FIELDS_SETS.setdefault(frozenset(fields), fields)
    if shared is not fields:
        _set_fields_set(model, shared)
