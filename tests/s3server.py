"""A real S3-compatible server for tests: moto's server, in its own process on 127.0.0.1, stopped after.

Every stage talks to it over HTTP exactly as it would to S3, MinIO or Ceph, through the same settings a
user gives: the standard AWS environment, or Beam's `--s3_*` flags.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import socket
import subprocess
import sys
import time
import urllib.request
from typing import Iterator

ACCESS_KEY = "vidclass-test-key"
SECRET_KEY = "vidclass-test-secret-do-not-log"
REGION = "us-east-1"


@dataclasses.dataclass(frozen=True)
class S3Server:
    endpoint: str

    def env(self) -> dict[str, str]:
        """The standard AWS environment pointing at this server."""
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": ACCESS_KEY,
                "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_DEFAULT_REGION": REGION}

    def beam_flags(self) -> list[str]:
        """Beam's own S3 flags pointing at this server."""
        return [f"--s3_endpoint_url={self.endpoint}", f"--s3_access_key_id={ACCESS_KEY}",
                f"--s3_secret_access_key={SECRET_KEY}", f"--s3_region_name={REGION}"]

    def client(self):
        import boto3
        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=ACCESS_KEY,
                            aws_secret_access_key=SECRET_KEY, region_name=REGION)

    def make_bucket(self, name: str) -> str:
        self.client().create_bucket(Bucket=name)
        return f"s3://{name}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def s3_server(log_path: str | None = None) -> Iterator[S3Server]:
    """Start moto's S3 server on a free loopback port; yield once it answers; stop it (and check)."""
    port = _free_port()
    log = open(log_path or os.devnull, "wb")
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=2).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto server did not start on {endpoint} (exit {proc.poll()})")
                time.sleep(0.2)
        yield S3Server(endpoint)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
