"""Model prices with history: the built-in list, price files (ours and LiteLLM's), edits, aliases.

Prices live in ``model_price_history`` (every change a row) and are read through a range
dictionary when cost is computed (:mod:`tracelake.store.cost_schema`); every change here reloads
the dictionaries, so the next query prices with it. docs/cost.md describes the file formats.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from importlib.resources import files
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from tracelake.store.base import Store

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
# Token kinds a price may name, beyond input and output (None: priced as plain input/output).
KIND_FIELDS = ("cache_read", "cache_write", "reasoning", "audio_input", "audio_output", "image_input")
_COLUMN = {"input": "InputPerMTok", "output": "OutputPerMTok", "cache_read": "CacheReadPerMTok",
           "cache_write": "CacheWritePerMTok", "reasoning": "ReasoningPerMTok", "audio_input": "AudioInputPerMTok",
           "audio_output": "AudioOutputPerMTok", "image_input": "ImageInputPerMTok"}
MAX_NAME = 200
_USD = Field(ge=0, le=1e6)


class PriceFileError(ValueError):
    """A prices file (or edit) that cannot be used, with the reason."""


class Price(BaseModel):
    """USD per million tokens of each kind, for a model (and a project: '' for every project),
    in force from ``effective_from`` until the next price of the same model and project."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1, max_length=MAX_NAME)
    project: str = Field("", max_length=MAX_NAME)
    effective_from: datetime = EPOCH
    input: float = _USD
    output: float = _USD
    cache_read: float | None = Field(None, ge=0, le=1e6)
    cache_write: float | None = Field(None, ge=0, le=1e6)
    reasoning: float | None = Field(None, ge=0, le=1e6)
    audio_input: float | None = Field(None, ge=0, le=1e6)
    audio_output: float | None = Field(None, ge=0, le=1e6)
    image_input: float | None = Field(None, ge=0, le=1e6)

    @field_validator("effective_from")
    @classmethod
    def _utc(cls, v: datetime) -> datetime:
        v = v if v.tzinfo else v.replace(tzinfo=timezone.utc)
        if v < EPOCH:
            raise ValueError("must not be before 1970-01-01")
        return v.astimezone(timezone.utc).replace(microsecond=0)

    @field_validator("model", "project")
    @classmethod
    def _printable(cls, v: str) -> str:
        if any(ord(c) < 32 for c in v) or v != v.strip():
            raise ValueError("no control characters or surrounding spaces")
        return v

    def key(self) -> tuple[str, str, datetime]:
        return (self.project, self.model, self.effective_from)

    def values(self) -> tuple[float | None, ...]:
        return tuple(getattr(self, k) for k in _COLUMN)


class PriceFile(BaseModel):
    """What a price file holds: prices and aliases (deployment name -> priced model)."""

    prices: list[Price] = []
    aliases: dict[str, str] = {}


def _error(origin: str, where: str, exc: ValidationError) -> PriceFileError:
    first = exc.errors()[0]
    field = ".".join(str(x) for x in first["loc"]) or "value"
    return PriceFileError(f"{origin}: {where}: field {field!r}: {first['msg']}")


def _short(model: str, value: Any, origin: str) -> Price:
    """``"model": [input, output]`` or ``"model": {"input": .., "output": .., ...}``."""
    try:
        if isinstance(value, list):
            if len(value) != 2:
                raise PriceFileError(f"{origin}: price of {model!r} must be [input, output] USD per million tokens, got {value!r}")
            return Price(model=model, input=value[0], output=value[1])
        if isinstance(value, dict):
            return Price(model=model, **value)
    except ValidationError as exc:
        raise _error(origin, f"price of {model!r}", exc) from None
    raise PriceFileError(f"{origin}: price of {model!r} must be [input, output] or an object, got {value!r}")


_LITELLM = {"input_cost_per_token": "input", "output_cost_per_token": "output",
            "cache_read_input_token_cost": "cache_read", "cache_creation_input_token_cost": "cache_write",
            "output_cost_per_reasoning_token": "reasoning", "input_cost_per_audio_token": "audio_input",
            "output_cost_per_audio_token": "audio_output", "input_cost_per_image_token": "image_input"}


def _litellm(data: dict[str, Any], origin: str) -> PriceFile:
    """LiteLLM's model_prices_and_context_window.json: USD per token; entries without a per-token
    input price (images, per-second audio, the sample spec) are skipped."""
    prices = []
    for model, spec in data.items():
        if not isinstance(spec, dict) or not isinstance(spec.get("input_cost_per_token"), (int, float)):
            continue
        fields = {ours: float(spec[theirs]) * 1e6 for theirs, ours in _LITELLM.items()
                  if isinstance(spec.get(theirs), (int, float)) and not isinstance(spec.get(theirs), bool)}
        fields.setdefault("output", 0.0)
        try:
            prices.append(Price(model=model, **fields))
        except ValidationError as exc:
            raise _error(origin, f"price of {model!r}", exc) from None
    return PriceFile(prices=prices)


def parse_prices(data: object, origin: str) -> PriceFile:
    """A price file in any accepted format (docs/cost.md):

    * ``{"prices": [{"model": .., "input": .., "output": .., "effective_from": .., ...}], "aliases": {..}}``;
    * the short form ``{"model": [input, output] | {"input": .., ...}}`` (keys starting with ``_`` are comments);
    * LiteLLM's ``model_prices_and_context_window.json`` (USD per token).
    """
    if not isinstance(data, dict):
        raise PriceFileError(f"{origin}: expected a JSON object (see docs/cost.md for the formats)")
    if "prices" in data or "aliases" in data:
        extra = sorted(set(data) - {"prices", "aliases"} - {k for k in data if k.startswith("_")})
        if extra:
            raise PriceFileError(f"{origin}: unknown key {extra[0]!r} (expected 'prices' and 'aliases')")
        for i, item in enumerate(data.get("prices") or []):
            try:
                Price.model_validate(item)
            except ValidationError as exc:
                raise _error(origin, f"prices[{i}]", exc) from None
        try:
            return PriceFile.model_validate({k: v for k, v in data.items() if not k.startswith("_")})
        except ValidationError as exc:
            raise _error(origin, "aliases", exc) from None
    entries = {k: v for k, v in data.items() if not k.startswith("_")}
    if any(isinstance(v, dict) and "input_cost_per_token" in v for v in entries.values()):
        return _litellm(entries, origin)
    return PriceFile(prices=[_short(m, v, origin) for m, v in entries.items()])


def load_prices_text(text: str, origin: str) -> PriceFile:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PriceFileError(f"{origin}: not JSON: {exc}") from exc
    return parse_prices(data, origin)


def builtin_prices() -> PriceFile:
    return load_prices_text(files("tracelake.store").joinpath("model_prices.json").read_text(), "built-in prices")


def load_prices_file(path: str | Path) -> PriceFile:
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise PriceFileError(f"{path}: {exc}") from exc
    return load_prices_text(text, str(path))


# --- the store's prices ---------------------------------------------------------------------------
def _in_force(store: Store) -> dict[tuple[str, str, datetime], tuple[tuple[float | None, ...], str]]:
    """(values, source) of each price row in force, by (project, model, effective from)."""
    from tracelake.store.cost_schema import CURRENT_PRICE_ROWS

    sql = f"SELECT *, toUnixTimestamp(EffectiveFrom) AS EF FROM ({CURRENT_PRICE_ROWS.replace('{database}', store.database)})"
    return {(r["Project"], r["Model"], datetime.fromtimestamp(r["EF"], timezone.utc)):
            (tuple(r[c] for c in _COLUMN.values()), r["Source"]) for r in store.query_arrow(sql).to_pylist()}


def reload(store: Store) -> None:
    """Reload the price and alias dictionaries: the next query prices with the change."""
    from tracelake.events import prices_changed

    for name in ("model_aliases_dict", "model_price_ranges_dict", "model_names_dict"):  # names read the others
        store.execute(f"SYSTEM RELOAD DICTIONARY {store.database}.{name}")
    prices_changed()


def write_prices(store: Store, prices: list[Price], source: str, who: str = "", deleted: bool = False) -> int:
    """Append price rows (a later row for the same model, project and effective time replaces the
    earlier one; ``deleted`` takes it out) in one INSERT; reload."""
    import pyarrow as pa

    if prices:
        cols: dict[str, list[Any]] = {"Project": [p.project for p in prices], "Model": [p.model for p in prices],
                                      "EffectiveFrom": [p.effective_from.replace(tzinfo=None) for p in prices]}
        for field, column in _COLUMN.items():
            cols[column] = [getattr(p, field) for p in prices]
        cols["Deleted"] = [1 if deleted else 0] * len(prices)
        cols["Source"] = [source] * len(prices)
        cols["ChangedBy"] = [who] * len(prices)
        table = pa.table(cols)
        table = table.set_column(2, "EffectiveFrom", table.column("EffectiveFrom").cast(pa.timestamp("s")))
        store.insert_arrow("model_price_history", table)
    reload(store)
    return len(prices)


def write_aliases(store: Store, aliases: dict[str, str], who: str = "", deleted: bool = False) -> int:
    import pyarrow as pa

    if aliases:
        store.insert_arrow("model_aliases", pa.table({
            "Alias": list(aliases), "Model": list(aliases.values()), "Deleted": [1 if deleted else 0] * len(aliases),
            "ChangedBy": [who] * len(aliases)}))
    reload(store)
    return len(aliases)


def install_prices(store: Store, user_file: str | Path | None = None) -> int:
    """Built-in prices where the store has none at their (model, effective time) or has an older
    built-in one that differs (a corrected list), then the user's file (``--prices-file``)
    wherever it differs from what is in force; then a reload. A built-in price never overwrites
    an edit or a file's price."""
    present = _in_force(store)
    user = load_prices_file(user_file) if user_file else PriceFile()
    user_keys = {p.key() for p in user.prices}

    def stale_builtin(p: Price) -> bool:
        found = present.get(p.key())
        return found is None or (found[1] == "builtin" and found[0] != p.values())

    builtin = [p for p in builtin_prices().prices if p.key() not in user_keys and stale_builtin(p)]
    mine = [p for p in user.prices if present.get(p.key(), ((), ""))[0] != p.values()]
    write_prices(store, builtin, "builtin")
    if mine:
        write_prices(store, mine, "file")
    if user.aliases:
        write_aliases(store, user.aliases, "file")
    return len(builtin) + len(mine)
