"""Model artifacts: one zip file per version, written atomically, verified by sha256.

Formats never run code on load: LightGBM's own text model format, scikit-learn estimators
through skops with an allow-list of expected types (anything else is refused), and the
preprocessing as JSON.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import zipfile
from pathlib import Path

from retrain.errors import ArtifactIntegrityError
from retrain.modeling import Preprocessing, TrainedModel

FORMAT = "retrain-model/1"

# skops refuses any type not on this list when loading.
_SKLEARN_TRUSTED_PREFIXES = ("sklearn.", "numpy.", "builtins.", "scipy.")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, fsync, rename; then fsync the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def serialize(model: TrainedModel) -> bytes:
    manifest = {"format": FORMAT, "kind": model.kind, "params": model.params,
                "classes": model.classes, "preprocessing": model.preprocessing.as_dict()}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("manifest.json", json.dumps(manifest, sort_keys=True, default=str))
        if model.kind == "lightgbm":
            zf.writestr("model.lgb.txt", model.estimator.model_to_string())
        else:
            import skops.io as sio
            zf.writestr("model.skops", sio.dumps(model.estimator))
    return buf.getvalue()


def save_model(model: TrainedModel, path: Path) -> str:
    """Write the artifact atomically; return its sha256."""
    data = serialize(model)
    atomic_write_bytes(path, data)
    return hashlib.sha256(data).hexdigest()


def load_model(path: Path, expected_sha256: str) -> TrainedModel:
    """Load an artifact after checking its sha256; a mismatch is an error, never a silent load."""
    path = Path(path)
    if not path.is_file():
        raise ArtifactIntegrityError(f"model artifact {path} is missing")
    data = path.read_bytes()
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected_sha256:
        raise ArtifactIntegrityError(
            f"model artifact {path} has sha256 {actual[:12]}..., the registry recorded "
            f"{expected_sha256[:12]}...: refusing to load a changed or corrupt file")
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        manifest = json.loads(zf.read("manifest.json"))
        if manifest.get("format") != FORMAT:
            raise ArtifactIntegrityError(f"{path}: unknown artifact format {manifest.get('format')!r}")
        kind = manifest["kind"]
        if kind == "lightgbm":
            import lightgbm as lgb
            estimator = lgb.Booster(model_str=zf.read("model.lgb.txt").decode())
        else:
            import skops.io as sio
            blob = zf.read("model.skops")
            untrusted = sio.get_untrusted_types(data=blob)
            refused = [t for t in untrusted if not t.startswith(_SKLEARN_TRUSTED_PREFIXES)]
            if refused:
                raise ArtifactIntegrityError(f"{path}: refusing to load unexpected types {refused}")
            estimator = sio.loads(blob, trusted=untrusted)
    return TrainedModel(kind, manifest["params"], Preprocessing.from_dict(manifest["preprocessing"]),
                        manifest["classes"], estimator)
