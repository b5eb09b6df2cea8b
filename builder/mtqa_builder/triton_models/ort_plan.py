"""Runs one batch of requests on a set of ONNX Runtime sessions ("lanes") in chunks.

On a CPU, ORT costs more per image at batch 32 than at batch 4 (the activations leave the cache:
the `tiny` FP32 net runs 932 img/s at batch 4 and 741 at batch 32 on one thread), and a batch that
Triton's dynamic batcher hands to one instance should use every core rather than leave them to an
idle sibling instance. So each request is cut into chunks of at most `chunk` images (never
spanning two requests), the chunks are dealt to the lanes so that each gets about the same
number of images, and the lanes run at once (ORT releases the GIL). Outputs are written in place
through IO binding. The local `mtqa_net` model and the in-process ORT peer of the benchmarks
both run this file, so the peer measures the same plan without the serving around it.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, wait

import numpy as np

Piece = tuple[int, int, int]  # (request index, first image, one past the last image)


def cut(sizes: Sequence[int], chunk: int, lanes: int) -> list[Piece]:
    """The chunks of the requests of `sizes` images: at most `chunk` images (0: no limit), never
    spanning two requests, and no more than an even share of the batch per lane, so that a lone
    8-image request still spreads over two lanes. OpenVINO's streams (ov_plan) use them too."""
    if lanes < 1 or chunk < 0:
        raise ValueError(f"lanes must be >= 1 and chunk >= 0, got {lanes} and {chunk}")
    total = sum(sizes)
    step = -(-total // lanes) if total else 1
    if chunk:
        step = min(step, chunk)
    return [(i, s, min(s + step, n)) for i, n in enumerate(sizes) for s in range(0, n, step)]


def plan(sizes: Sequence[int], chunk: int, lanes: int) -> list[list[Piece]]:
    """Deal the chunks of `cut` to at most `lanes` lanes; empty lanes are left out."""
    # Largest first onto the least-loaded lane: the lanes finish at about the same time.
    loads = [0] * lanes
    dealt: list[list[Piece]] = [[] for _ in range(lanes)]
    for piece in sorted(cut(sizes, chunk, lanes), key=lambda p: p[1] - p[2]):
        lane = loads.index(min(loads))
        dealt[lane].append(piece)
        loads[lane] += piece[2] - piece[1]
    return [lane for lane in dealt if lane]


class LaneRunner:
    """Runs `parts` (float32 [n,C,H,W] arrays, one per request) over `sessions` by `plan`.

    Every session must have the same single input and outputs whose dims past the batch axis are
    fixed. `run` returns, per request, one array per name of `outputs`.
    """

    def __init__(self, sessions: Sequence, outputs: Sequence[str], chunk: int) -> None:
        if not sessions:
            raise ValueError("LaneRunner needs at least one session")
        self.sessions = list(sessions)
        self.chunk = chunk
        self.input = self.sessions[0].get_inputs()[0].name
        meta = {o.name: o for o in self.sessions[0].get_outputs()}
        self.specs = []
        for name in outputs:
            if meta[name].type != "tensor(float)":
                raise ValueError(f"output {name} must be float32, got {meta[name].type}")
            dims = meta[name].shape[1:]
            if not all(isinstance(d, int) for d in dims):
                raise ValueError(f"output {name} needs fixed dims past the batch axis, got {dims}")
            self.specs.append((name, tuple(dims)))
        lanes = len(self.sessions)
        self._pool = ThreadPoolExecutor(lanes, thread_name_prefix="ort-lane") if lanes > 1 else None

    def run(self, parts: Sequence[np.ndarray]) -> list[list[np.ndarray]]:
        """Outputs per request; an ORT error in any lane is raised here after all lanes end."""
        results = [[np.empty((len(p), *dims), np.float32) for _, dims in self.specs] for p in parts]
        lanes = plan([len(p) for p in parts], self.chunk, len(self.sessions))

        def run_lane(session, pieces: list[Piece]) -> None:
            for request, start, stop in pieces:
                binding = session.io_binding()
                binding.bind_cpu_input(self.input, np.ascontiguousarray(parts[request][start:stop]))
                for (name, dims), out in zip(self.specs, results[request], strict=True):
                    view = out[start:stop]
                    binding.bind_output(
                        name, "cpu", 0, np.float32, [stop - start, *dims], view.ctypes.data
                    )
                session.run_with_iobinding(binding)

        if self._pool is None or len(lanes) == 1:
            for pieces in lanes:
                run_lane(self.sessions[0], pieces)
        else:
            futures = [
                self._pool.submit(run_lane, session, pieces)
                for session, pieces in zip(self.sessions, lanes, strict=False)
            ]
            wait(futures)
            for future in futures:
                future.result()
        return results

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)


def open_runner(
    onnx_path, threads: int, lanes: int, chunk: int, outputs: Sequence[str] | None = None
) -> LaneRunner:
    """A `LaneRunner` over `lanes` CPU sessions of `onnx_path` with `threads` intra-op threads
    each, for `outputs` (default: all). Idle workers do not spin-wait: the lanes sit beside other
    busy sessions on the same cores. The served model and the benchmarks' peer both open it so."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    sessions = [
        ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        for _ in range(max(1, lanes))
    ]
    names = [o.name for o in sessions[0].get_outputs()] if outputs is None else list(outputs)
    return LaneRunner(sessions, names, chunk)
