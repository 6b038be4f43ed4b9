"""An S3 emulator on loopback for the object-storage tests: moto's server mode, started as its
own process (``moto_server``), reached over HTTP like any S3-compatible service (MinIO, Ceph,
AWS itself). It is an emulator: it speaks S3's API and keeps the objects in its memory.

``S3Server.env`` is the environment every client reads (s3fs/botocore and polars alike):
keys, region, and ``AWS_ENDPOINT_URL``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from prefect_server import free_port


@dataclass
class S3Server:
    endpoint: str
    process: subprocess.Popen

    @property
    def env(self) -> dict[str, str]:
        return {"AWS_ACCESS_KEY_ID": "emulator", "AWS_SECRET_ACCESS_KEY": "emulator-secret",
                "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1",
                "AWS_ENDPOINT_URL": self.endpoint}

    def new_bucket(self) -> str:
        """A fresh bucket (a random name), created through the S3 API."""
        name = f"retrain-{uuid.uuid4().hex[:12]}"
        fs = self.filesystem()
        fs.mkdir(name)
        fs.invalidate_cache()
        return name

    def filesystem(self):
        import s3fs
        return s3fs.S3FileSystem(key="emulator", secret="emulator-secret",
                                 endpoint_url=self.endpoint, skip_instance_cache=True)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def start_s3_server(log: Path) -> S3Server:
    port = free_port()
    moto = Path(sys.executable).with_name("moto_server")
    command = [str(moto)] if moto.exists() else [sys.executable, "-m", "moto.server"]
    out = open(log, "wb")
    process = subprocess.Popen([*command, "-H", "127.0.0.1", "-p", str(port)], stdout=out,
                               stderr=subprocess.STDOUT, env={**os.environ})
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the S3 emulator stopped at start: {log.read_text()[-2000:]}")
        try:
            httpx.get(endpoint + "/", timeout=1.0)
            return S3Server(endpoint, process)
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"the S3 emulator did not answer on {endpoint}: {log.read_text()[-2000:]}")


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory) -> S3Server:
    """The S3 emulator, one process for the session."""
    server = start_s3_server(tmp_path_factory.mktemp("s3") / "moto.log")
    yield server
    server.stop()


@dataclass
class Bucket:
    server: S3Server
    name: str

    def url(self, key: str = "") -> str:
        return f"s3://{self.name}/{key}".rstrip("/")

    @property
    def fs(self):
        return self.server.filesystem()

    def keys(self, prefix: str = "") -> list[str]:
        fs = self.fs
        try:
            return sorted(p[len(self.name) + 1:] for p in fs.find(f"{self.name}/{prefix}"))
        except FileNotFoundError:
            return []


@pytest.fixture
def s3(s3_server, monkeypatch) -> Bucket:
    """A fresh bucket on the S3 emulator, with this process's environment pointing at it."""
    for key, value in s3_server.env.items():
        monkeypatch.setenv(key, value)
    return Bucket(s3_server, s3_server.new_bucket())
