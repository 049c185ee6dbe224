"""`vidclass evaluate`: clip- and video-level accuracy of a model bundle on a dataset split.

Video-level scores average the class probabilities of a video's clips, which is how `infer` labels
a video, so the two agree on the same videos. Dataset and model dir may be remote (the shards through
the local cache; the outputs written where the model dir is). A figure with nothing to measure (recall
of a class without test videos) is null, never NaN: the results are strict JSON.
"""
from __future__ import annotations

import collections
import io
import sys
from typing import Any

import numpy as np
import tensorflow as tf

from vidclass import bundle, dataset, errors, plots, storage, strictjson
from vidclass.data import local_dataset, make_dataset


def predict_split(model, data_dir: str, info: dataset.DatasetInfo, split: str, frames: int,
                  batch_size: int = 16) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Class probabilities [clips, C], true label indices [clips] and video ids of every clip of `split`."""
    forward = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    probs, labels, ids = [], [], []
    for x, y, vid in make_dataset(data_dir, info, split, batch_size, training=False, frames=frames, with_ids=True):
        probs.append(forward(x).numpy())
        labels.append(np.argmax(y.numpy(), axis=1))
        ids.extend(v.decode() for v in vid.numpy())
    if not probs:
        return np.zeros((0, len(info.labels))), np.zeros((0,), np.int64), []
    return np.concatenate(probs).astype(np.float64), np.concatenate(labels), ids


def video_level(probs: np.ndarray, labels: np.ndarray, ids: list[str]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Average the clips of each video: one probability row and one label per video."""
    groups: dict[str, list[int]] = collections.defaultdict(list)
    for i, vid in enumerate(ids):
        groups[vid].append(i)
    order = sorted(groups)
    return (np.stack([probs[groups[v]].mean(axis=0) for v in order]) if order else probs[:0],
            np.array([labels[groups[v][0]] for v in order], np.int64), order)


def topk(probs: np.ndarray, labels: np.ndarray, k: int) -> float | None:
    """Share of examples whose label is among the k best scores; None with no examples."""
    if len(labels) == 0:
        return None
    top = np.argsort(-probs, axis=1)[:, :k]
    return float(np.mean([labels[i] in top[i] for i in range(len(labels))]))


def confusion(pred: np.ndarray, labels: np.ndarray, n: int) -> np.ndarray:
    m = np.zeros((n, n), np.int64)
    np.add.at(m, (labels, pred), 1)
    return m


def scores(probs: np.ndarray, labels: np.ndarray, names: list[str]) -> dict[str, Any]:
    """top-1/top-5, mean class accuracy and per-class precision/recall/F1 of one set of predictions."""
    n = len(names)
    m = confusion(np.argmax(probs, axis=1), labels, n)
    support, predicted, hits = m.sum(axis=1), m.sum(axis=0), np.diag(m)
    per_class = {}
    for i, name in enumerate(names):
        p = hits[i] / predicted[i] if predicted[i] else 0.0
        r = hits[i] / support[i] if support[i] else None  # no videos of the class: nothing to recall
        f1 = 2 * p * r / (p + r) if r is not None and p + r > 0 else 0.0
        per_class[name] = {"precision": round(float(p), 4), "recall": None if r is None else round(float(r), 4),
                           "f1": round(float(f1), 4), "support": int(support[i])}
    recalls = [hits[i] / support[i] for i in range(n) if support[i]]
    return {"top1": topk(probs, labels, 1), "top5": topk(probs, labels, min(5, n)),
            "mean_class_accuracy": float(np.mean(recalls)) if recalls else None,
            "num_examples": int(len(labels)), "per_class": per_class, "confusion": m}


def evaluate(data_dir: str, model_dir: str, split: str = "test", batch_size: int = 16) -> dict[str, Any]:
    """Score the split, write confusion_matrix.png/.csv and the split's section of metrics.json."""
    info, b = dataset.load(data_dir), bundle.load(model_dir)
    if info.labels != b.labels:
        raise errors.UsageError(f"the dataset's labels {info.labels.to_list()[:5]}... differ from the model's "
                         f"{b.labels.to_list()[:5]}...; evaluate on a dataset made with the same classes")
    if info.spec != b.spec:
        print(f"evaluate: warning: dataset sampling {info.spec.to_json()} differs from the model's "
              f"{b.spec.to_json()}", file=sys.stderr)
    dataset.shard_paths(data_dir, info, split)  # an unknown split is refused before the model loads
    model = bundle.load_model(model_dir)
    probs, labels, ids = predict_split(model, local_dataset(data_dir, info), info, split, b.model_frames, batch_size)
    names = b.labels.to_list()
    clip = scores(probs, labels, names)
    vprobs, vlabels, _ = video_level(probs, labels, ids)
    video = scores(vprobs, vlabels, names)
    matrix = video.pop("confusion")
    clip.pop("confusion")
    result = {**video, "split": split, "num_clips": int(len(labels)), "model_version": b.model_version,
              "clip": {k: v for k, v in clip.items() if k != "per_class"}}
    csv = io.StringIO()
    np.savetxt(csv, matrix, fmt="%d", delimiter=",", header=",".join(names), comments="")
    storage.write_bytes(storage.join(model_dir, "confusion_matrix.csv"), csv.getvalue().encode())
    plots.confusion_matrix(matrix, names, storage.join(model_dir, "confusion_matrix.png"),
                           f"{split}: video top-1 {_fmt(result['top1'])}")
    result = strictjson.clean(result)
    bundle.update_metrics(model_dir, split, result)
    return result


def _fmt(value: float | None, spec: str = ".3f") -> str:
    return "n/a" if value is None else format(value, spec)


def report(result: dict[str, Any]) -> str:
    """A readable summary: headline numbers and the per-class table."""
    lines = [f"split {result['split']}: {result['num_examples']} videos, {result['num_clips']} clips",
             f"  video top-1 {_fmt(result['top1'], '.4f')}  top-5 {_fmt(result['top5'], '.4f')}  "
             f"mean class accuracy {_fmt(result['mean_class_accuracy'], '.4f')}",
             f"  clip  top-1 {_fmt(result['clip']['top1'], '.4f')}  top-5 {_fmt(result['clip']['top5'], '.4f')}",
             f"  {'class':24} {'precision':>9} {'recall':>7} {'f1':>6} {'support':>8}"]
    for name, c in result["per_class"].items():
        lines.append(f"  {name[:24]:24} {c['precision']:9.3f} {_fmt(c['recall']):>7} {c['f1']:6.3f} "
                     f"{c['support']:8d}")
    return "\n".join(lines)
