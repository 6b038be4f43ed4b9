"""The feature store: append-only rows with a timestamp, read lazily with polars.

A *window* is a half-open time range ``[start, end)`` or closed ``[start, end]``; the
production model's training window and "rows newer than it" are the two that matter.
Everything that leaves this module has been validated: a bad column raises
``DataValidationError`` naming the column and the problem.
"""

from __future__ import annotations

import glob
import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import polars as pl

from retrain.config import DataConfig, Settings, TrainingConfig
from retrain.data.schema import Schema, Window, dtype_family
from retrain.data.remote import file_stamp, open_file, polars_storage_options, remote_files
from retrain.errors import DataValidationError
from retrain.storage import is_url

log = logging.getLogger("retrain")


def _source_files(source: str, options: dict | None = None) -> list[str]:
    if is_url(source):
        return remote_files(source, options)
    path = Path(source)
    if path.is_dir():
        files = sorted(str(p) for p in path.rglob("*") if p.suffix.lower() in (".parquet", ".csv"))
    else:
        files = sorted(glob.glob(source, recursive=True))
    return files


@dataclass(frozen=True)
class ScanReport:
    """What the last scan read: files, rows, and rows left out for having no timestamp."""

    files: int = 0
    rows: int = 0
    rows_without_timestamp: int = 0


def _open(path: str, options: dict | None = None) -> tuple[pl.LazyFrame, pl.Schema]:
    """A file of the store, lazily, and its columns; an unreadable file is a one-line error
    that names it. ``options``: ``[storage] options`` for a file on object storage."""
    lower = path.lower()
    remote = is_url(path)
    cloud = polars_storage_options(path, options) if remote else None
    try:
        if lower.endswith(".parquet"):
            lf = pl.scan_parquet(path, storage_options=cloud)
        elif lower.endswith(".csv"):
            with open_file(path, options) as fh:
                header = fh.readline().decode("utf-8", errors="replace").rstrip("\r\n")
            names = [n.strip().strip('"') for n in header.split(",")]
            duplicates = sorted({n for n in names if names.count(n) > 1})
            if duplicates:
                raise DataValidationError(duplicates[0], f"{path}: the header names "
                                          f"{', '.join(map(repr, duplicates))} more than once")
            lf = pl.scan_csv(path, try_parse_dates=True, infer_schema_length=10_000,
                             storage_options=cloud)
        else:
            raise DataValidationError(None, f"{path}: only .parquet and .csv files are supported")
        return lf, lf.collect_schema()
    except DataValidationError:
        raise
    except (pl.exceptions.PolarsError, OSError, ValueError) as exc:
        kind = "Parquet" if lower.endswith(".parquet") else "CSV"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataValidationError(None, f"{path}: not a readable {kind} file ({first[:200]})") from None


def read_file(path: str | Path, options: dict | None = None) -> pl.DataFrame:
    """One Parquet or CSV file, read whole (``retrain predict``'s input); an unreadable file
    is a one-line error that names it."""
    lf, _ = _open(str(path), options)
    try:
        return lf.collect()
    except (pl.exceptions.PolarsError, OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataValidationError(None, f"{path}: cannot be read ({first[:200]})") from None


class FeatureStore:
    """Lazy access to the append-only feature store described by ``[data]``."""

    def __init__(self, settings: Settings):
        self.config: DataConfig = settings.data
        self.source = settings.data_source
        self.options = settings.storage.options  # for a source on object storage
        # The last scan and the files it was made of, (path, mtime, size) each: the checks and
        # the training of one run read the same files, so their schemas are read once.
        self._scanned: tuple[tuple, pl.LazyFrame] | None = None
        self.report = ScanReport()  # of the last scan
        # Rows stamped after this are not there yet (a backtest replays the store period by
        # period); None: every row.
        self.as_of: datetime | None = None

    # Reading --------------------------------------------------------------------------------
    def scan(self) -> pl.LazyFrame:
        """Every row with a timestamp, lazily, the files checked for consistent column types."""
        files = _source_files(self.source, self.options)
        if not files:
            raise DataValidationError(None, f"no Parquet or CSV files found at {self.source}")
        stamp = tuple(file_stamp(f, self.options) for f in files)
        if self._scanned is None or self._scanned[0] != stamp:
            self._scanned = (stamp, self._scan(files))
        frame = self._scanned[1]
        if self.as_of is not None:
            frame = frame.filter(pl.col(self.config.timestamp) <= self.as_of)
        return frame

    def _scan(self, files: list[str]) -> pl.LazyFrame:
        cfg = self.config
        ts = cfg.timestamp
        frames, schemas = [], []
        for f in files:
            lf, schema = _open(f, self.options)
            if ts not in schema:
                raise DataValidationError(ts, f"timestamp column is missing in {f} (its columns: "
                                          f"{', '.join(list(schema)[:8])}{'...' if len(schema) > 8 else ''}"
                                          f"{'; is it separated by something else than commas?' if len(schema) == 1 else ''})")
            if cfg.target not in schema and not cfg.allow_unlabeled_files:
                raise DataValidationError(cfg.target, f"target column is missing in {f}; set [data] "
                                          "allow_unlabeled_files = true if its rows are meant "
                                          "to be unlabeled")
            frames.append(self._normalise_timestamp(lf, schema, f))
            schemas.append((f, schema))
        self._check_consistent(schemas)
        self._check_time_zones(schemas)
        self.report = self._check_timestamps(frames, files)
        return pl.concat(frames, how="diagonal_relaxed").filter(pl.col(ts).is_not_null())

    def _check_timestamps(self, frames: list[pl.LazyFrame], files: list[str]) -> ScanReport:
        """Rows without a timestamp are counted (an error above ``max_null_timestamp_share``);
        rows stamped later than now plus ``max_future`` are an error naming the file."""
        cfg = self.config
        ts = pl.col(cfg.timestamp)
        limit = datetime.now(timezone.utc).replace(tzinfo=None) + cfg.max_future_delta
        counts = pl.concat([lf.select(pl.len().alias("rows"), ts.null_count().alias("nulls"),
                                      (ts > limit).sum().alias("future"), ts.max().alias("latest"))
                            for lf in frames]).collect()
        for f, row in zip(files, counts.iter_rows(named=True)):
            if row["future"]:
                raise DataValidationError(cfg.timestamp, (
                    f"{row['future']} rows of {f} are stamped later than now plus [data] "
                    f"max_future ({cfg.max_future}), up to {row['latest']}: wrong clock or "
                    "wrong column?"))
        rows, nulls = int(counts["rows"].sum()), int(counts["nulls"].sum())
        without = {f: n for f, n in zip(files, counts["nulls"].to_list()) if n}
        if rows and nulls / rows > cfg.max_null_timestamp_share:
            where = ", ".join(f"{n} in {f}" for f, n in list(without.items())[:5])
            raise DataValidationError(cfg.timestamp, (
                f"{nulls} of {rows} rows have no timestamp ({where}), more than [data] "
                f"max_null_timestamp_share ({cfg.max_null_timestamp_share:.0%})"))
        if nulls:
            log.warning("%d of %d rows have no timestamp and are left out (%s)", nulls, rows,
                        ", ".join(f"{n} in {f}" for f, n in without.items()))
        return ScanReport(files=len(files), rows=rows, rows_without_timestamp=nulls)

    def _check_consistent(self, schemas: list[tuple[str, pl.Schema]]) -> None:
        first_file, first = schemas[0]
        declared = set(self.config.categorical or ())  # read as text whatever each file holds
        for f, schema in schemas[1:]:
            for col, dtype in schema.items():
                if col in declared and "other" not in (dtype_family(first.get(col, dtype)),
                                                       dtype_family(dtype)):
                    continue
                if col in first and dtype_family(first[col]) != dtype_family(dtype):
                    raise DataValidationError(
                        col, f"type changed between files: {first[col]} in {first_file}, "
                        f"{dtype} in {f}")

    def _check_time_zones(self, schemas: list[tuple[str, pl.Schema]]) -> None:
        """All files stamp their rows alike: with no time zone, or with the same one."""
        ts = self.config.timestamp
        zones = {}
        for f, schema in schemas:
            dtype = schema[ts]
            zones.setdefault(dtype.time_zone if isinstance(dtype, pl.Datetime) else None, f)
        if len(zones) > 1:
            shown = ", ".join(f"{zone or 'no time zone'} in {f}" for zone, f in zones.items())
            raise DataValidationError(ts, f"the files' timestamps are in different time zones "
                                      f"({shown}); write them all in one")

    def _normalise_timestamp(self, lf: pl.LazyFrame, schema: pl.Schema, f: str) -> pl.LazyFrame:
        ts = self.config.timestamp
        dtype = schema[ts]
        if dtype == pl.Date:
            return lf.with_columns(pl.col(ts).cast(pl.Datetime("us")))
        if isinstance(dtype, pl.Datetime):
            # An aware timestamp as UTC wall time (the clock the max_future check reads).
            column = pl.col(ts)
            if dtype.time_zone is not None:
                column = column.dt.convert_time_zone("UTC")
            return lf.with_columns(column.dt.replace_time_zone(None).cast(pl.Datetime("us")))
        if dtype == pl.String:
            return lf.with_columns(pl.col(ts).str.to_datetime(strict=False).cast(pl.Datetime("us")))
        raise DataValidationError(ts, f"timestamp column must be a date or datetime, found {dtype} in {f}")

    def schema(self, expected: Schema | None = None) -> Schema:
        """Resolve the feature schema from config and the data; check it against ``expected``.

        ``expected`` is the schema a production version was trained with: a missing feature or
        one whose type changed since is an error.
        """
        cfg = self.config
        columns = self.scan().collect_schema()
        for col, what in ((cfg.target, "target"), (cfg.timestamp, "timestamp")):
            if col not in columns:
                raise DataValidationError(col, f"{what} column is missing")
        reserved = {cfg.target, cfg.timestamp, cfg.entity_id}
        features = list(expected.features) if expected else (
            cfg.features or [c for c in columns if c not in reserved])
        for col in features:
            if col not in columns:
                raise DataValidationError(col, "feature column is missing")
            if dtype_family(columns[col]) == "other":
                raise DataValidationError(col, f"unsupported feature type {columns[col]}")
        if expected:
            categorical = list(expected.categorical)
            for col in features:
                # A categorical stays one whatever its storage (integer codes, booleans, text).
                now = "categorical" if col in categorical else dtype_family(columns[col])
                was = "categorical" if col in categorical else "numeric"
                if now != was:
                    raise DataValidationError(
                        col, f"type changed: the production model was trained on {was} values, "
                        f"the data now has {columns[col]}")
        else:
            categorical = [c for c in features if dtype_family(columns[c]) == "categorical"]
            for col in cfg.categorical or []:
                if col not in features:
                    raise DataValidationError(col, "listed in [data] categorical but not a feature")
                if col not in categorical:
                    categorical.append(col)
        if not features:
            raise DataValidationError(None, "no feature columns (set [data] features)")
        return Schema(tuple(features), tuple(c for c in features if c in categorical))

    # Windows --------------------------------------------------------------------------------
    def time_range(self) -> Window | None:
        ts = self.config.timestamp
        row = self.scan().select(pl.col(ts).min().alias("lo"), pl.col(ts).max().alias("hi")).collect()
        lo, hi = row["lo"][0], row["hi"][0]
        return None if lo is None else Window(lo, hi)

    def rows(self, start: datetime | None = None, end: datetime | None = None,
             *, after: datetime | None = None, labeled: bool = True) -> pl.LazyFrame:
        """Rows with ``start <= ts <= end`` (or ``ts > after``), optionally only labeled ones."""
        ts = self.config.timestamp
        lf = self.scan()
        if start is not None:
            lf = lf.filter(pl.col(ts) >= start)
        if end is not None:
            lf = lf.filter(pl.col(ts) <= end)
        if after is not None:
            lf = lf.filter(pl.col(ts) > after)
        if labeled:
            lf = lf.filter(pl.col(self.config.target).is_not_null())
        return lf

    def count_rows(self, lf: pl.LazyFrame) -> int:
        return int(lf.select(pl.len()).collect().item())

    def training_window(self, training: TrainingConfig) -> Window:
        """The window a new candidate trains on: the newest rows per ``[training] window``."""
        full = self.time_range()
        if full is None:
            raise DataValidationError(self.config.timestamp, "the feature store has no rows")
        spec = training.window
        if spec == "all":
            return full
        m = re.fullmatch(r"(\d+)(d|rows)", spec)
        assert m  # validated by config
        n, unit = int(m.group(1)), m.group(2)
        if unit == "d":
            return Window(max(full.start, full.end - timedelta(days=n)), full.end)
        ts = self.config.timestamp
        start = (self.rows().select(pl.col(ts)).sort(ts, descending=True).head(n)
                 .select(pl.col(ts).min()).collect().item())
        return Window(start, full.end)
