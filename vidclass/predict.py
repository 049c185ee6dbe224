"""Scoring decoded clips with a model bundle: the one forward path of `infer` and `predict`.

Frames go through the same JPEG encode/decode as training records did before reaching the model, so a
video scored here gets the numbers `evaluate` computes from its shards: no train/serve skew.
"""
from __future__ import annotations

import concurrent.futures
import json
import sys
from typing import Sequence

import numpy as np
import tensorflow as tf

from vidclass import bundle, errors, predictions, schema
from vidclass.video.isolation import WorkerPool
from vidclass.video import Clips, DecodeLimits, decoder_threads


class Predictor:
    """A loaded bundle: `video_probs` turns each video's clips into one averaged probability vector."""

    def __init__(self, model_dir: str, batch_size: int = 16):
        self.bundle = bundle.load(model_dir)
        self.model = bundle.load_model(model_dir)
        self.batch_size = batch_size
        b = self.bundle
        # A fixed signature: one trace serves every batch size (eager calls cost 1.5-2.6x, measured).
        self._forward = tf.function(lambda x: self.model(x, training=False), input_signature=[
            tf.TensorSpec([None, b.model_frames, b.spec.size, b.spec.size, 3], tf.float32)])
        # traced too: run eagerly, decode_jpegs' per-frame map_fn cost 14.5 of 16.7 ms per clip (measured)
        self._decode = tf.function(schema.decode_jpegs, input_signature=[tf.TensorSpec([None], tf.string)])

    def prepare(self, clips: np.ndarray) -> np.ndarray:
        """uint8 [K, T, S, S, 3] -> the float32 model input: JPEG round trip as in training records, and
        the centre window of frames when the model takes fewer than the clips hold (as `evaluate` does)."""
        k, t = clips.shape[:2]
        q = self.bundle.jpeg_quality
        jpegs = tf.constant([schema.encode_jpeg(f, q) for f in clips.reshape(-1, *clips.shape[2:])])
        frames = self._decode(jpegs).numpy().reshape(clips.shape)
        start = (t - self.bundle.model_frames) // 2
        return frames[:, start:start + self.bundle.model_frames].astype(np.float32)

    def video_probs(self, videos: Sequence[np.ndarray]) -> list[np.ndarray]:
        """One probability vector per video (mean over its clips), computed in batches of clips."""
        inputs = [self.prepare(v) for v in videos]
        counts = [len(x) for x in inputs]
        if not inputs:
            return []
        x = np.concatenate(inputs)
        probs = np.concatenate([self._forward(tf.constant(x[i:i + self.batch_size])).numpy()
                                for i in range(0, len(x), self.batch_size)]).astype(np.float64)
        bounds = np.cumsum([0, *counts])
        return [probs[a:b].mean(axis=0) for a, b in zip(bounds[:-1], bounds[1:])]


def _table(rows: list[dict]) -> str:
    lines = [f"{'status':6} {'label':20} {'score':>6}  {'top-k':40} video"]
    for r in rows:
        if r["status"] != "ok":
            lines.append(f"{'ERROR':6} {r['error_code']:20} {'':>6}  {r['error_message'][:40]:40} {r['video_uri']}")
        else:
            topk = ", ".join(f"{n} {s:.2f}" for n, s in zip(r["top_k_labels"], r["top_k_scores"]))
            lines.append(f"{'ok':6} {r['label'][:20]:20} {r['score']:6.3f}  {topk[:40]:40} {r['video_uri']}")
    return "\n".join(lines)


def main(args) -> int:
    """`vidclass predict VIDEO... --model-dir M`: no Beam, the same decode and model path as `infer`."""
    try:
        predictor = Predictor(args.model_dir, args.batch_size)
    except (FileNotFoundError, ValueError, OSError) as e:
        print(f"predict: error: cannot load the model: {e}", file=sys.stderr)
        return 2
    b = predictor.bundle
    from vidclass.probe import expand_inputs
    uris = expand_inputs(args.videos)
    spec = b.spec
    limits = DecodeLimits(timeout_s=args.timeout, threads=decoder_threads(args.workers))
    pool = WorkerPool()
    try:
        with concurrent.futures.ThreadPoolExecutor(max(1, args.workers)) as ex:
            outcomes = list(ex.map(lambda u: pool.worker().sample(u, spec, limits), uris))
    finally:
        pool.close()
    good = [(u, o) for u, o in zip(uris, outcomes) if isinstance(o, Clips)]
    probs = dict(zip([u for u, _ in good], predictor.video_probs([o.frames for _, o in good])))
    rows = []
    for uri, out in zip(uris, outcomes):
        if isinstance(out, errors.Failure):
            rows.append(predictions.error_row(uri, out, b.model_version, "predict"))
        else:
            rows.append(predictions.ok_row(uri, uri, probs[uri], b.labels, args.top_k, out.info,
                                           out.frames.shape[0], b.model_version, "predict"))
    if args.json:
        for r in rows:
            print(json.dumps(predictions.to_json_row(r)))
    else:
        print(_table(rows))
    failed = sum(r["status"] != "ok" for r in rows)
    print(f"predict: {len(rows)} videos, {len(rows) - failed} scored, {failed} failed "
          f"(model {b.model_name} {b.model_version})", file=sys.stderr)
    return 0
