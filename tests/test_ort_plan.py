"""The local mtqa_net's execution plan: chunks that never span requests, dealt evenly to lanes,
and the lane runner's outputs equal to one plain ORT call over the whole batch."""

import itertools

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from mtqa_builder.triton_models.ort_plan import LaneRunner, plan


@pytest.mark.parametrize(
    ("sizes", "chunk", "lanes"),
    [
        ([32], 4, 2),
        ([3, 1, 8], 4, 2),
        ([1], 4, 2),
        ([5, 7], 0, 3),
        ([2, 2, 2, 2], 1, 4),
        ([9], 4, 1),
    ],
)
def test_plan_covers_each_image_once_in_bounded_chunks_balanced_over_lanes(sizes, chunk, lanes):
    dealt = plan(sizes, chunk, lanes)
    assert 1 <= len(dealt) <= lanes and all(dealt)
    pieces = [p for lane in dealt for p in lane]
    for request, n in enumerate(sizes):  # each request's pieces tile 0..n exactly
        spans = sorted((start, stop) for r, start, stop in pieces if r == request)
        assert spans[0][0] == 0 and spans[-1][1] == n
        assert all(a[1] == b[0] for a, b in itertools.pairwise(spans))
    widths = [stop - start for _, start, stop in pieces]
    assert min(widths) >= 1 and (chunk == 0 or max(widths) <= chunk)
    loads = [sum(stop - start for _, start, stop in lane) for lane in dealt]
    assert max(loads) - min(loads) <= max(widths)


def test_plan_spreads_a_lone_request_over_the_lanes():
    assert sorted(plan([8], 4, 2)) == [[(0, 0, 4)], [(0, 4, 8)]]
    assert sorted(plan([3], 0, 2)) == [[(0, 0, 2)], [(0, 2, 3)]]
    assert plan([1], 4, 2) == [[(0, 0, 1)]]  # one image cannot be split
    with pytest.raises(ValueError, match="lanes must be >= 1"):
        plan([4], 4, 0)


def _conv_model(path, out_type=TensorProto.FLOAT, fixed=True):
    """[n,3,8,8] -> conv 3x3 to 4 channels (`maps`) and their per-channel mean (`score`)."""
    w = np.random.default_rng(0).normal(size=(4, 3, 3, 3)).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["maps"], pads=[1, 1, 1, 1]),
        helper.make_node("ReduceMean", ["maps", "axes"], ["mean4"], keepdims=0),
        helper.make_node("Cast", ["mean4"], ["score"], to=out_type),
    ]
    axes = numpy_helper.from_array(np.array([2, 3], np.int64), "axes")
    side = 8 if fixed else "side"
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, side, side])],
        [
            helper.make_tensor_value_info("maps", TensorProto.FLOAT, ["n", 4, side, side]),
            helper.make_tensor_value_info("score", out_type, ["n", 4]),
        ],
        [numpy_helper.from_array(w, "w"), axes],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), path)
    return str(path)


def _sessions(path, count):
    return [ort.InferenceSession(path, providers=["CPUExecutionProvider"]) for _ in range(count)]


@pytest.mark.parametrize(("lanes", "chunk"), [(1, 0), (2, 4), (3, 1)])
def test_lane_runner_matches_one_plain_call_per_request(tmp_path, lanes, chunk):
    path = _conv_model(tmp_path / "m.onnx")
    rng = np.random.default_rng(1)
    parts = [rng.normal(size=(n, 3, 8, 8)).astype(np.float32) for n in (3, 1, 8)]
    runner = LaneRunner(_sessions(path, lanes), ["score", "maps"], chunk)
    try:
        got = runner.run(parts)
    finally:
        runner.close()
    plain = _sessions(path, 1)[0]
    for part, outs in zip(parts, got, strict=True):
        score, maps = plain.run(["score", "maps"], {"x": part})
        np.testing.assert_allclose(outs[0], score, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(outs[1], maps, rtol=1e-6, atol=1e-6)


def test_lane_runner_raises_ort_errors_and_refuses_unsized_or_non_float_outputs(tmp_path):
    path = _conv_model(tmp_path / "m.onnx")
    runner = LaneRunner(_sessions(path, 2), ["maps"], 2)
    try:
        with pytest.raises(Exception, match="(?i)invalid|dimension|shape"):
            runner.run([np.zeros((4, 5, 8, 8), np.float32)])  # 5 channels, the model takes 3
        assert runner.run([np.ones((2, 3, 8, 8), np.float32)])[0][0].shape == (2, 4, 8, 8)
    finally:
        runner.close()
    unsized = _conv_model(tmp_path / "u.onnx", fixed=False)
    with pytest.raises(ValueError, match="fixed dims"):
        LaneRunner(_sessions(unsized, 1), ["maps"], 0)
    doubles = _conv_model(tmp_path / "d.onnx", out_type=TensorProto.DOUBLE)
    with pytest.raises(ValueError, match="must be float32"):
        LaneRunner(_sessions(doubles, 1), ["score"], 0)
