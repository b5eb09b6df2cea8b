"""Per-item outcomes of a batch call (`inspect` of a list, `inspect_many`).

The contract, the same for the sync and asyncio clients:

- an image the client cannot read or encode, or that the server could not decode (its
  `item_error` output), becomes an `ItemError` at its index; the other images are answered, and
  the call returns the list (check `.ok`, or `isinstance(x, ItemError)`);
- a request that fails as a whole (server down, timeout, overload after the retries) does not
  throw away what other requests answered: the call still runs every request, then raises
  `BatchError`, whose `.results` holds every answer with an `ItemError` (carrying that request's
  error) in place of each image of a failed request;
- a single image (not a list) raises its error directly, as before.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from mtqa_client.errors import InspectionError, InvalidInputError
from mtqa_client.images import EncodedImage
from mtqa_client.results import InspectionResult, ItemError

Outcome = InspectionResult | ItemError


class BatchError(InspectionError):
    """Some requests of a batch call failed as a whole; nothing answered was discarded.

    `results` has one entry per image, in input order: an `InspectionResult` for each answered
    image and an `ItemError` for every other one; `failures` holds each failed request's error.
    """

    def __init__(self, results: list[Outcome], failures: Sequence[InspectionError]) -> None:
        answered = sum(1 for r in results if r.ok)
        first = failures[0]
        super().__init__(
            f"{len(failures)} request(s) failed; {answered} of {len(results)} images answered "
            f"(see .results); first failure: {type(first).__name__}: {first}"
        )
        self.results = results
        self.failures = list(failures)

    @property
    def errors(self) -> list[ItemError]:
        """The entries of `results` that have no answer."""
        return [r for r in self.results if isinstance(r, ItemError)]


def source_of(item: object, index: int) -> str:
    """How an input is named before it is encoded: its path, else "item N"."""
    if isinstance(item, (str, os.PathLike)):
        return str(Path(item))
    return f"item {index}"


class Collector:
    """Outcomes of the images `offset .. offset + n` of a call, filled as they are known."""

    def __init__(self, offset: int, n: int) -> None:
        self.offset = offset
        self.outcomes: list[Outcome | None] = [None] * n
        self.failures: list[InspectionError] = []

    def encode(
        self, items: Sequence[object], encode: Callable[[object, int], EncodedImage]
    ) -> list[EncodedImage]:
        """Encode each item; an unusable one becomes its ItemError. Returns the sendable ones."""
        ready = []
        for j, item in enumerate(items):
            index = self.offset + j
            try:
                ready.append(encode(item, index))
            except InvalidInputError as exc:
                self.outcomes[j] = ItemError(index, source_of(item, index), exc)
        return ready

    def answered(self, chunk: Sequence[EncodedImage], answers: Sequence[Outcome]) -> None:
        """Place one request's answers (results and server-marked ItemErrors), one per image."""
        if len(answers) != len(chunk):  # parse_inspect checks the rows; a guard, not a path
            raise RuntimeError(f"{len(answers)} answers for {len(chunk)} images")
        for img, answer in zip(chunk, answers, strict=True):
            self.outcomes[img.index - self.offset] = answer

    def failed(self, chunk: Sequence[EncodedImage], error: InspectionError) -> None:
        """A whole request failed: each of its images gets an ItemError carrying `error`."""
        self.failures.append(error)
        for img in chunk:
            self.outcomes[img.index - self.offset] = ItemError(img.index, img.source, error)

    def done(self) -> list[Outcome]:
        missing = [self.offset + j for j, o in enumerate(self.outcomes) if o is None]
        if missing:  # a bug, never an input: every image is encoded, answered or failed
            raise RuntimeError(f"no outcome for images {missing}")
        return list(self.outcomes)  # type: ignore[arg-type]


def finish(parts: Sequence[Collector], batch: bool) -> Outcome | list[Outcome]:
    """The call's return value: the list (raising BatchError after a failed request), or the
    single image's result (raising its error)."""
    outcomes = [o for part in parts for o in part.done()]
    failures = [f for part in parts for f in part.failures]
    if not batch:
        only = outcomes[0]
        if isinstance(only, ItemError):
            raise only.error
        return only
    if failures:
        raise BatchError(outcomes, failures)
    return outcomes
