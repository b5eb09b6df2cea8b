"""What a user of the typed SDK writes; mypy --strict must accept it."""

from mtqa_client import InspectionClient, ItemError


def grades(paths: list[str]) -> list[str]:
    with InspectionClient("localhost:8001", timeout_s=10) as client:
        results = client.inspect_many(paths, concurrency=4)
        return [r.grade.name if not isinstance(r, ItemError) else "error" for r in results]


def first_box(path: str) -> tuple[float, ...] | None:
    with InspectionClient("localhost:8001") as client:
        result = client.inspect(path)  # one image: one InspectionResult
        return tuple(result.regions[0].box) if result.regions else None


def names(paths: list[str]) -> list[str]:
    with InspectionClient("localhost:8001") as client:
        return [type(r).__name__ for r in client.inspect(paths)]  # a list: a list
