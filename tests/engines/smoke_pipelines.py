"""Small but real Beam pipelines for the engine smoke tests.

This module imports only the standard library, Beam and pyarrow: the SDK harnesses that Flink's
TaskManagers start import it by name to unpickle its DoFns (the tests put this folder on the harnesses'
PYTHONPATH), so it must not depend on anything only the test process has on its path.
"""

from __future__ import annotations

import glob
import os
import struct
import subprocess
from typing import Iterable, Iterator

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.ml.inference.base import KeyedModelHandler, ModelHandler, PredictionResult, RunInference

NAMESPACE = "engines_smoke"


def input_lines(n: int = 100) -> list[str]:
    """``key,value`` lines: five keys, values 0..n-1."""
    return [f"k{i % 5},{i}" for i in range(n)]


def expected_sums(lines: Iterable[str]) -> list[str]:
    sums: dict[str, int] = {}
    for line in lines:
        k, v = line.split(",")
        sums[k] = sums.get(k, 0) + int(v)
    return sorted(f"{k}:{v}" for k, v in sums.items())


class EchoThroughChild(beam.DoFn):
    """Parses ``key,value`` after a round trip through a child process started in ``setup()``.

    Like the project's decoding DoFns, it owns a subprocess for its whole life on the worker; it counts
    lines in a counter and records the child's pid in a distribution (so a test can tell that more
    than one worker process ran it).
    """

    def __init__(self) -> None:
        self.lines = Metrics.counter(NAMESPACE, "lines")
        self.child_pid = Metrics.distribution(NAMESPACE, "child_pid")
        self._child: subprocess.Popen[str] | None = None

    def setup(self) -> None:
        self._child = subprocess.Popen(
            ["cat"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
        )

    def process(self, line: str) -> Iterator[tuple[str, int]]:
        assert self._child is not None and self._child.stdin and self._child.stdout
        self._child.stdin.write(line + "\n")
        echoed = self._child.stdout.readline().rstrip("\n")
        if echoed != line:
            raise RuntimeError(f"child echoed {echoed!r} for {line!r}")
        self.lines.inc()
        self.child_pid.update(self._child.pid)
        key, value = echoed.split(",")
        yield key, int(value)

    def teardown(self) -> None:
        if self._child is not None:
            if self._child.stdin:
                self._child.stdin.close()
            self._child.wait(timeout=10)
            self._child = None


def format_sum(key: str, values: Iterable[int]) -> str:
    return f"{key}:{sum(values)}"


def build_text_pipeline(p: beam.Pipeline, input_path: str, output_prefix: str) -> None:
    """text -> DoFn with a child process -> GroupByKey -> Reshuffle -> text."""
    (
        p
        | "Read" >> beam.io.ReadFromText(input_path)
        | "Echo" >> beam.ParDo(EchoThroughChild())
        | "Group" >> beam.GroupByKey()
        | "Sum" >> beam.MapTuple(format_sum)
        | "Reshuffle" >> beam.Reshuffle()
        | "Write" >> beam.io.WriteToText(output_prefix, shard_name_template="-SSSSS-of-NNNNN")
    )


def read_text_outputs(output_prefix: str) -> list[str]:
    lines: list[str] = []
    for path in glob.glob(output_prefix + "-*-of-*"):
        with open(path, encoding="utf-8") as f:
            lines.extend(line.rstrip("\n") for line in f)
    return sorted(lines)


# --- the project's kinds of IO: TFRecord, Parquet, RunInference ---------------------------------------


class Multiplier:
    """The 'model' (a class instance: RunInference shares models through weak references, so no dict)."""

    def __init__(self, factor: int) -> None:
        self.factor = factor


class DoublingModelHandler(ModelHandler[int, PredictionResult, Multiplier]):
    """A model handler with no ML library: the model multiplies by 2 and is loaded once per worker."""

    def load_model(self) -> Multiplier:
        return Multiplier(2)

    def run_inference(self, batch, model, inference_args=None):
        Metrics.counter(NAMESPACE, "inferences").inc(len(batch))
        return [PredictionResult(x, x * model.factor) for x in batch]


PARQUET_SCHEMA_FIELDS = (("key", "string"), ("value", "int64"), ("prediction", "int64"))


def _parquet_schema():
    import pyarrow as pa

    return pa.schema([(name, getattr(pa, kind)()) for name, kind in PARQUET_SCHEMA_FIELDS])


def to_row(keyed: tuple[str, PredictionResult]) -> dict:
    key, result = keyed
    return {"key": key, "value": int(result.example), "prediction": int(result.inference)}


def build_io_pipeline(p: beam.Pipeline, n: int, tfrecord_prefix: str, parquet_prefix: str) -> None:
    """Create -> WriteToTFRecord, and Create -> Reshuffle -> RunInference -> WriteToParquet."""
    records = p | "Create" >> beam.Create([(f"id{i:03d}", i) for i in range(n)])
    (
        records
        | "Bytes" >> beam.MapTuple(lambda k, v: f"{k}={v}".encode())
        | "WriteTFRecord" >> beam.io.WriteToTFRecord(tfrecord_prefix, file_name_suffix=".tfrecord")
    )
    (
        records
        | "Spread" >> beam.Reshuffle()
        | "Infer" >> RunInference(KeyedModelHandler(DoublingModelHandler()))
        | "Row" >> beam.Map(to_row)
        | "WriteParquet" >> beam.io.WriteToParquet(parquet_prefix, _parquet_schema(), file_name_suffix=".parquet")
    )


def read_tfrecords(prefix: str) -> list[bytes]:
    """Records of every ``prefix*.tfrecord`` file (uncompressed TFRecord framing; CRCs not checked)."""
    out: list[bytes] = []
    for path in sorted(glob.glob(prefix + "*.tfrecord")):
        with open(path, "rb") as f:
            data = f.read()
        pos = 0
        while pos < len(data):
            (length,) = struct.unpack_from("<Q", data, pos)
            pos += 12  # length + masked crc of length
            out.append(data[pos : pos + length])
            pos += length + 4  # data + masked crc of data
    return out


def read_parquet_rows(prefix: str) -> list[dict]:
    import pyarrow.parquet as pq

    rows: list[dict] = []
    for path in sorted(glob.glob(prefix + "*.parquet")):
        rows.extend(pq.read_table(path).to_pylist())
    return sorted(rows, key=lambda r: r["key"])


def counter(result, name: str, namespace: str | None = NAMESPACE) -> int | None:
    """A counter from ``result.metrics().query()`` (any namespace if ``namespace`` is None), summed over
    steps: committed, else attempted (Prism and Flink's job server report committed values; Flink's
    uber-jar mode only attempted ones)."""
    from apache_beam.metrics.metric import MetricsFilter

    f = MetricsFilter().with_name(name)
    if namespace is not None:
        f = f.with_namespace(namespace)
    found = result.metrics().query(f)["counters"]
    if not found:
        return None
    return sum((c.committed if c.committed is not None else c.attempted) or 0 for c in found)


def distribution(result, name: str):
    from apache_beam.metrics.metric import MetricsFilter

    found = result.metrics().query(MetricsFilter().with_namespace(NAMESPACE).with_name(name))["distributions"]
    return [d.committed if d.committed is not None else d.attempted for d in found]


def write_input(path: str, lines: list[str]) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write("".join(line + "\n" for line in lines))
