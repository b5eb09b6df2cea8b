"""Keywords renamed for one name per idea; the old spelling keeps working for one release.

A model version is `model_version` everywhere (as in tritonclient and PyTriton): the client's
constructor and `infer_tensor` took `version=` before. Passing the old keyword still works and
emits a DeprecationWarning.
"""

from __future__ import annotations

import warnings
from typing import TypeVar

T = TypeVar("T")


def renamed_keyword(old: str, old_value: T | None, new: str, new_value: T | None) -> T | None:
    """The value of keyword `new`, or of the deprecated `old` (with a DeprecationWarning pointing
    at the caller's call). Giving both is a TypeError, as a repeated keyword is."""
    if old_value is None:
        return new_value
    if new_value is not None:
        raise TypeError(f"pass {new}= only; {old}= is its deprecated spelling")
    warnings.warn(
        f"{old}= is deprecated, use {new}= (the old keyword goes in the next release)",
        DeprecationWarning,
        stacklevel=3,
    )
    return old_value
