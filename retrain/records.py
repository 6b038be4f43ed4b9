"""The base of the typed values stages hand each other and the documents made from them.

A record is a pydantic model: stages construct and read it by attribute; ``to_dict()`` gives
its JSON form at the edges (``--json``, events, artifacts, the audit log's details), and
``from_dict()`` reads such a form back (the seed's API passes dictionaries between calls).
"""

from __future__ import annotations

from typing import Any, Mapping, TypeVar

from pydantic import BaseModel, ConfigDict

R = TypeVar("R", bound="Record")


class Record(BaseModel):
    # Every field is in the JSON form (None as null), so the JSON Schema lists them all as
    # required; a field that is left out when empty says so with ``exclude_if``.
    model_config = ConfigDict(extra="forbid", validate_assignment=True,
                              json_schema_serialization_defaults_required=True)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: plain dicts, lists, strings, numbers, booleans and nulls."""
        return self.model_dump(mode="json")

    @classmethod
    def from_dict(cls: type[R], value: "R | Mapping[str, Any]") -> R:
        """``value`` as this type: a record is returned as it is, a mapping is validated
        (a wrong or missing key is a ``pydantic.ValidationError`` that names it)."""
        return value if isinstance(value, cls) else cls.model_validate(dict(value))

