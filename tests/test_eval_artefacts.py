"""write_artefacts on an in-memory evaluation: every file, the report's links, missing logs,
the self-contained HTML report and the worst-case gallery."""

import json
import re
from html.parser import HTMLParser

import numpy as np
from fixtures.evaluation import CLASSES, GRADES, labelled_dataset, oracle
from PIL import Image

from mtqa.evaluate import run_evaluation
from mtqa.evaluate.artefacts import write_artefacts
from mtqa.evaluate.plots import read_training_log

INFO = {"checkpoint": "runs/x", "data": "memory", "split": "test", "thresholds_rule": "default"}
LOG = (
    "epoch,step,lr,seconds,loss_total,loss_segmentation,weight_presence,val_defect_iou,score,best\n"
    "0,4,0.003,1.2,3.4,1.6,1.0,0.07,0.1,1\n"
    "1,8,0.001,2.3,3.1,1.5,1.0,0.09,n/a,0\n"
)


def _result():
    return run_evaluation(oracle, labelled_dataset(n=6), CLASSES, GRADES, keep_samples=2)


def test_every_artefact_is_written_and_linked(tmp_path):
    log = tmp_path / "metrics.csv"
    log.write_text(LOG)
    files = write_artefacts(_result(), tmp_path / "out", INFO, [0.0] * 3, [1.0] * 3, log)
    expected = {"report", "metrics", "confusion_matrices", "pr_curves", "confusion_grade"}
    expected |= {"confusion_pixels", "training_curves", "overlays", "report_html"}
    expected |= {"threshold_curves", "confusion_presence", "heatmaps"}  # no worst case: all right
    assert set(files) == expected
    for path in files.values():
        assert path.is_file() and path.stat().st_size > 0
    metrics = json.loads(files["metrics"].read_text())
    assert metrics["miou"] == 1.0 and metrics["data"] == "memory"
    confusion = json.loads(files["confusion_matrices"].read_text())
    assert np.trace(np.array(confusion["pixel"]["matrix"])) == 6 * 16 * 16
    report = files["report"].read_text()
    for link in re.findall(r"\]\(([^)]+)\)", report):
        assert (tmp_path / "out" / link).is_file(), link
    assert "| mIoU (defect classes) | 1.0000 |" in report
    assert "| any-defect AP (image level) |" in report
    assert "| mIoU (background + defect classes) | 1.0000 |" in report


def test_missing_or_empty_training_log_is_reported_not_fatal(tmp_path):
    empty = tmp_path / "metrics.csv"
    empty.write_text("epoch,loss_total\n")
    files = write_artefacts(_result(), tmp_path / "out", INFO, [0.0] * 3, [1.0] * 3, empty)
    assert "training_curves" not in files
    assert "(not available for this run)" in files["report"].read_text()
    files = write_artefacts(_result(), tmp_path / "out2", INFO, [0.0] * 3, [1.0] * 3, None)
    assert "training_curves" not in files


def test_training_log_keeps_numeric_columns_only(tmp_path):
    log = tmp_path / "metrics.csv"
    log.write_text(LOG + "2,12,0.0,3.4,2.9,1.4,1.0,0.1,0.2,1\n")
    columns = read_training_log(log)
    assert columns["loss_total"] == [3.4, 3.1, 2.9]
    assert np.isnan(columns["score"][1])  # the non-numeric cell, not the whole column


def confused(images: np.ndarray) -> dict[str, np.ndarray]:
    """The oracle with class `a`'s presence turned around: every `a` missed or falsely found."""
    out = oracle(images)
    out["presence_logits"][:, 0] *= -1
    return out


def _confused_result():
    return run_evaluation(confused, labelled_dataset(n=8), CLASSES, GRADES, keep_samples=2)


class _Refs(HTMLParser):
    """Every src / href of a page, and the text of its <figcaption>s."""

    def __init__(self):
        super().__init__()
        self.src, self.href, self.captions, self._in_caption = [], [], [], False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "src" in attrs:
            self.src.append(attrs["src"])
        if "href" in attrs:
            self.href.append(attrs["href"])
        self._in_caption = tag == "figcaption"

    def handle_data(self, data):
        if self._in_caption:
            self.captions.append(data)
            self._in_caption = False


def test_worst_cases_are_the_wrong_decisions_worst_first():
    result = _confused_result()
    missed, false = result.worst["missed"], result.worst["false"]
    assert missed and false
    assert len(missed) <= 2 and len(false) <= 2
    for case in missed:
        assert case.class_name == "a" and case.prob < case.threshold
    for case in false:
        assert case.class_name == "a" and case.prob >= case.threshold
    assert [c.margin for c in missed] == sorted((c.margin for c in missed), reverse=True)


def test_html_report_is_self_contained_and_embeds_every_plot(tmp_path):
    log = tmp_path / "metrics.csv"
    log.write_text(LOG)
    out = tmp_path / "out"
    files = write_artefacts(_confused_result(), out, INFO, [0.0] * 3, [1.0] * 3, log)
    plots = [p for p in files.values() if p.suffix == ".png"]
    assert {p.stem for p in plots} >= {
        "threshold_curves",
        "worst_missed",
        "worst_false",
        "heatmaps",
    }
    refs = _Refs()
    refs.feed(files["report_html"].read_text())
    # every picture is inside the page; links only name sibling files that exist
    assert len(refs.src) == len(plots)
    assert all(src.startswith("data:image/png;base64,") for src in refs.src)
    assert refs.href and all("/" not in h and (out / h).is_file() for h in refs.href)
    assert any("against the threshold" in c for c in refs.captions)
    assert any("Worst missed" in c for c in refs.captions)
    assert any("normalised" in c for c in refs.captions)


def test_overlay_panels_are_at_least_512_px(tmp_path):
    files = write_artefacts(_confused_result(), tmp_path, INFO, [0.0] * 3, [1.0] * 3, None)
    for name in ("overlays", "worst_missed", "worst_false"):
        with Image.open(files[name]) as picture:
            assert picture.width >= 3 * 512, name  # image | truth | prediction
            assert picture.height >= 512, name


def test_a_one_class_evaluation_draws_every_plot(tmp_path):
    """One defect class (KolektorSDD-like): every per-class figure has a single column."""

    def one_class(images):
        out = oracle(images)
        return {
            **out,
            "presence_logits": out["presence_logits"][:, :1],
            "seg_logits": out["seg_logits"][:, :1],
        }

    data = labelled_dataset(n=6)
    for item in data:
        item["mask"], item["presence"] = item["mask"][:1], item["presence"][:1]
    result = run_evaluation(one_class, data, CLASSES[:1], GRADES, keep_samples=2)
    files = write_artefacts(result, tmp_path / "out", INFO, [0.0] * 3, [1.0] * 3, None)
    for key in ("threshold_curves", "confusion_presence", "heatmaps", "report_html"):
        assert files[key].is_file() and files[key].stat().st_size > 0, key
