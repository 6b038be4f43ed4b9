"""Model artifacts: one zip file per version, written atomically, verified by sha256 (the
registry stores them in an ``retrain.storage.ObjectStore``: a local folder or object storage).

Formats never run code on load (``retrain.estimators``: LightGBM's text format, XGBoost's
UBJSON, scikit-learn estimators through skops with an allow-list of types, anything else
refused), and the preprocessing as JSON. A version's reference profile for drift checks
(``reference_profile.npz``, see ``retrain.drift.profile``) travels in the same zip, so the
registry's sha256 covers it too; older artifacts simply lack it.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
import zlib
from pathlib import Path

from retrain.errors import ArtifactIntegrityError, ConfigError
from retrain.estimators import DEFAULT_SOURCE, EstimatorSource, kind_of
from retrain.modeling import Preprocessing, TrainedModel
from retrain.storage import ObjectStore

FORMAT = "retrain-model/1"
ARTIFACT_COMPRESSION = 1  # zlib level of an artifact's entries
PROFILE_ENTRY = "reference_profile.npz"

def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def serialize(model: TrainedModel, profile: bytes | None = None) -> bytes:
    kind = kind_of(model.kind)
    manifest = {"format": FORMAT, "kind": model.kind, "params": model.params,
                "classes": model.classes, "preprocessing": model.preprocessing.as_dict(),
                "entry": kind.entry, "task": model.task, **model.source.describe()}
    if profile is not None:
        manifest["reference_profile"] = PROFILE_ENTRY
    blob = kind.dump(model.estimator, model.source)  # refuses what could not be loaded again
    buf = io.BytesIO()
    # Level 1, not zlib's default 6: a 200-tree forest of 61 MB packs to 15.2 MB in 0.35 s
    # instead of 12.7 MB in 1.12 s (README, "Registry and artifacts").
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED,
                         compresslevel=ARTIFACT_COMPRESSION) as zf:
        zf.writestr("manifest.json", json.dumps(manifest, sort_keys=True, default=str))
        if profile is not None:
            zf.writestr(PROFILE_ENTRY, profile)
        zf.writestr(kind.entry, blob)
    return buf.getvalue()


def save_model(model: TrainedModel, path: Path, profile: bytes | None = None) -> str:
    """Write the artifact (with the reference profile, if any) atomically; return its sha256."""
    path = Path(path)
    return ObjectStore(path.parent).write(path.name, serialize(model, profile))


def verified_bytes(path: Path, expected_sha256: str) -> bytes:
    """The file's bytes, if it is there and its sha256 is the one the registry recorded."""
    path = Path(path)
    return ObjectStore(path.parent).verified(path.name, expected_sha256)


def load_profile_bytes(path: Path, expected_sha256: str) -> bytes | None:
    """The reference profile stored in an artifact (sha256 checked), or None if it has none."""
    return profile_from_bytes(verified_bytes(path, expected_sha256), path)


def profile_from_bytes(data: bytes, path: Path | str) -> bytes | None:
    """The reference profile in an artifact's bytes (already verified), or None."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            if PROFILE_ENTRY not in zf.namelist():
                return None
            return zf.read(PROFILE_ENTRY)
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise ArtifactIntegrityError(f"{path}: not a readable model artifact: {exc!r}") from None


def load_model(path: Path, expected_sha256: str,
               source: EstimatorSource = DEFAULT_SOURCE) -> TrainedModel:
    """Load an artifact after checking its sha256; a mismatch is an error, never a silent load.
    ``source``: the model section's trust (types its skops file may hold beyond the allowed
    ones) and the folder its own code is imported from; never taken from the artifact."""
    path = Path(path)
    return model_from_bytes(verified_bytes(path, expected_sha256), path, source)


def model_from_bytes(data: bytes, path: Path, source: EstimatorSource = DEFAULT_SOURCE
                     ) -> TrainedModel:
    """The model in an artifact's bytes (already verified by the caller); ``path`` names it in
    errors."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            manifest = json.loads(zf.read("manifest.json"))
            if manifest.get("format") != FORMAT:
                raise ArtifactIntegrityError(
                    f"{path}: unknown artifact format {manifest.get('format')!r}")
            kind = kind_of(manifest["kind"])
            try:
                estimator = kind.load(zf.read(kind.entry), source)
            except ArtifactIntegrityError as exc:
                raise ArtifactIntegrityError(f"{path}: {exc}") from None
        return TrainedModel(manifest["kind"], manifest["params"],
                            Preprocessing.from_dict(manifest["preprocessing"]),
                            manifest["classes"], estimator, source,
                            manifest.get("task", "binary"))  # older artifacts: binary
    except ArtifactIntegrityError:
        raise
    except ConfigError as exc:  # an unknown kind: written by a newer retrain?
        raise ArtifactIntegrityError(f"{path}: {exc}") from None
    except (zipfile.BadZipFile, zlib.error, EOFError, KeyError, ValueError, TypeError) as exc:
        # The sha256 matched, so the file is what was registered, yet it is not a usable
        # artifact (written by something else?): say so instead of a bare KeyError.
        raise ArtifactIntegrityError(f"{path}: not a readable model artifact: {exc!r}") from None
