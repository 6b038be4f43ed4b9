"""Model artifacts: one zip file per version, written atomically, verified by sha256.

Formats never run code on load: LightGBM's own text model format, scikit-learn estimators
through skops with an allow-list of expected types (anything else is refused), and the
preprocessing as JSON. A version's reference profile for drift checks
(``reference_profile.npz``, see ``retrain.drift.profile``) travels in the same zip, so the registry's
sha256 covers it too; older artifacts simply lack it.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import zipfile
import zlib
from pathlib import Path

from retrain.errors import ArtifactIntegrityError
from retrain.failpoints import failpoint
from retrain.modeling import Preprocessing, TrainedModel

FORMAT = "retrain-model/1"
PROFILE_ENTRY = "reference_profile.npz"

# Types our estimators need beyond skops' own default-trusted set (scikit-learn estimators,
# primitives). Exact names, never module prefixes: skops *calls* the named object when it
# rebuilds some nodes, so trusting "builtins." would trust ``builtins.exec`` and a prefix
# such as "numpy." would trust ``numpy.load``. A dump that needs anything else is refused
# when it is saved (so it is never registered) and when it is loaded.
SKOPS_ALLOWED_TYPES = frozenset({
    "sklearn.tree._tree.Tree",  # the fitted trees of a random forest
    "numpy.dtype",
    "numpy.float64", "numpy.float32", "numpy.int64", "numpy.int32", "numpy.bool_",
})


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
        failpoint("artifact:before-replace")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def serialize(model: TrainedModel, profile: bytes | None = None) -> bytes:
    manifest = {"format": FORMAT, "kind": model.kind, "params": model.params,
                "classes": model.classes, "preprocessing": model.preprocessing.as_dict()}
    if profile is not None:
        manifest["reference_profile"] = PROFILE_ENTRY
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("manifest.json", json.dumps(manifest, sort_keys=True, default=str))
        if profile is not None:
            zf.writestr(PROFILE_ENTRY, profile)
        if model.kind == "lightgbm":
            zf.writestr("model.lgb.txt", model.estimator.model_to_string())
        else:
            import skops.io as sio  # late: loads scikit-learn, which only this kind needs
            blob = sio.dumps(model.estimator)
            refused = _refused_types(blob)
            if refused:
                raise ArtifactIntegrityError(
                    f"cannot store a {model.kind} model: its skops dump needs types outside "
                    f"the allow-list {refused}; it could not be loaded again")
            zf.writestr("model.skops", blob)
    return buf.getvalue()


def _refused_types(skops_blob: bytes) -> list[str]:
    import skops.io as sio  # late: see serialize
    return [t for t in sio.get_untrusted_types(data=skops_blob) if t not in SKOPS_ALLOWED_TYPES]


def save_model(model: TrainedModel, path: Path, profile: bytes | None = None) -> str:
    """Write the artifact (with the reference profile, if any) atomically; return its sha256."""
    data = serialize(model, profile)
    atomic_write_bytes(path, data)
    return hashlib.sha256(data).hexdigest()


def verified_bytes(path: Path, expected_sha256: str) -> bytes:
    """The file's bytes, if it is there and its sha256 is the one the registry recorded."""
    path = Path(path)
    if not path.is_file():
        raise ArtifactIntegrityError(f"model artifact {path} is missing")
    data = path.read_bytes()
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected_sha256:
        raise ArtifactIntegrityError(
            f"model artifact {path} has sha256 {actual[:12]}..., the registry recorded "
            f"{expected_sha256[:12]}...: refusing to load a changed or corrupt file")
    return data


def load_profile_bytes(path: Path, expected_sha256: str) -> bytes | None:
    """The reference profile stored in an artifact (sha256 checked), or None if it has none."""
    data = verified_bytes(path, expected_sha256)
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            if PROFILE_ENTRY not in zf.namelist():
                return None
            return zf.read(PROFILE_ENTRY)
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise ArtifactIntegrityError(f"{path}: not a readable model artifact: {exc!r}") from None


def load_model(path: Path, expected_sha256: str) -> TrainedModel:
    """Load an artifact after checking its sha256; a mismatch is an error, never a silent load."""
    path = Path(path)
    data = verified_bytes(path, expected_sha256)
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            manifest = json.loads(zf.read("manifest.json"))
            if manifest.get("format") != FORMAT:
                raise ArtifactIntegrityError(
                    f"{path}: unknown artifact format {manifest.get('format')!r}")
            kind = manifest["kind"]
            # Late: LightGBM and skops (scikit-learn) take seconds to import; a version is
            # loaded with the one library its kind needs.
            if kind == "lightgbm":
                import lightgbm as lgb
                estimator = lgb.Booster(model_str=zf.read("model.lgb.txt").decode())
            else:
                import skops.io as sio
                blob = zf.read("model.skops")
                needed = sio.get_untrusted_types(data=blob)
                refused = [t for t in needed if t not in SKOPS_ALLOWED_TYPES]
                if refused:
                    raise ArtifactIntegrityError(
                        f"{path}: refusing to load unexpected types {refused}")
                estimator = sio.loads(blob, trusted=needed)
        return TrainedModel(kind, manifest["params"],
                            Preprocessing.from_dict(manifest["preprocessing"]),
                            manifest["classes"], estimator)
    except ArtifactIntegrityError:
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, KeyError, ValueError, TypeError) as exc:
        # The sha256 matched, so the file is what was registered, yet it is not a usable
        # artifact (written by something else?): say so instead of a bare KeyError.
        raise ArtifactIntegrityError(f"{path}: not a readable model artifact: {exc!r}") from None
