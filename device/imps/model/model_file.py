"""The model file contract: one home for it.

A model is a single-step ``.tflite`` with explicit LSTM state:

- inputs:  ``x`` (1, 1, D), then ``h<i>`` and ``c<i>`` (1, units) for each layer i
- outputs: ``params`` (1, 2*K*D + K) laid out ``[mus (K*D) | sigmas (K*D) | pi logits (K)]``,
  component-major (mus[k*D:(k+1)*D] is component k), and the new ``h<i>``, ``c<i>``.
- builtin ops only (no Flex / Select-TF ops).
- values in and out are scaled: the network sees ``row * input_scale`` and
  its mus and sigmas are in those scaled units.

A model without a sidecar (as IMPSY and other MDRNN tools publish them) gets
the source tool's settings, ``NO_SIDECAR``: IMPSY scales by 10 and samples
with pi temperature 1.5 and sigma temperature 0.01.

Beside ``name.tflite`` sits ``name.json``, the sidecar (see ``Sidecar``).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional

import msgspec
import numpy as np

from .. import ranges
from ..errors import ConfigError, ModelError, one_line
from ..readfile import deeper_than, read_regular
from ..settings import Table, decode

SIDECAR_FORMAT = "imps-model/1"
#: Scale used by models that come without a sidecar (the published MDRNN convention).
DEFAULT_INPUT_SCALE = 10.0


@dataclass(frozen=True)
class SourceDefaults:
    """Settings for a model that has no sidecar: those of the tool that made it."""
    tool: str
    input_scale: float
    pi_temperature: float
    sigma_temperature: float

    def describe(self) -> str:
        return (f"{self.tool}'s defaults: input scale {self.input_scale:g}, "
                f"pi temperature {self.pi_temperature:g}, sigma temperature {self.sigma_temperature:g}")


#: IMPSY 1.2 (impsy/mdrnn.py): SCALE_FACTOR = 10 multiplies the input row and divides the
#: sample; MDRNNInferenceModel sets pi_temp = 1.5 and sigma_temp = 0.01.
NO_SIDECAR = SourceDefaults("IMPSY", DEFAULT_INPUT_SCALE, 1.5, 0.01)
X_NAME = "x"
PARAMS_NAME = "params"


def state_names(layers: int) -> list[str]:
    """Names of the state tensors in order: h0, c0, h1, c1, ..."""
    return [f"{kind}{i}" for i in range(layers) for kind in ("h", "c")]


def shape_from_params_size(size: int, dimension: int) -> int:
    """Mixture count K from the output size 2*K*D + K, or a ModelError."""
    k, rem = divmod(size, 2 * dimension + 1)
    if rem or k < 1:
        raise ModelError(f"output size {size} is not 2*K*D + K for D = {dimension}")
    return k


def split_params(params: np.ndarray, dimension: int, mixtures: int):
    """Views (mus (K, D), sigmas (K, D), pi logits (K,)) into a flat params vector."""
    kd = mixtures * dimension
    flat = params.reshape(-1)
    return (flat[:kd].reshape(mixtures, dimension),
            flat[kd:2 * kd].reshape(mixtures, dimension),
            flat[2 * kd:2 * kd + mixtures])


class Sidecar(Table):
    """``name.json`` beside ``name.tflite``: a msgspec Struct, every number in ``ranges.SIDECAR``.

    Read with ``read_sidecar`` (at most MAX_SIDECAR_BYTES, unknown keys refused); a Sidecar
    built in code is checked the same way (``__post_init__``), so the exporter cannot write one
    the box would refuse. ``training`` is a record for people (dataset, rows, epochs, the
    command); the box never reads a number from it.
    """
    dimension: int
    units: int
    layers: int
    mixtures: int
    input_scale: float = DEFAULT_INPUT_SCALE
    pi_temperature: float = 1.0          # recommended sampling temperatures
    sigma_temperature: float = 0.01
    validation_loss: Optional[float] = None
    training: Dict[str, Any] = msgspec.field(default_factory=dict)   # dataset, rows, epochs, command...
    sha256: Optional[str] = None         # of the .tflite: says the file is the one exported, not that it is safe
    converted_from: Optional[Dict[str, Any]] = None   # another tool's model this one was converted from (tool, file, sha256)
    format: str = SIDECAR_FORMAT

    def __post_init__(self):
        for key in self.__struct_fields__:
            r = ranges.SIDECAR.get(key)
            if r is not None:
                r.check(key, getattr(self, key))
        if self.sha256 is not None and not _HEX64.fullmatch(self.sha256):
            raise ConfigError(f"sha256 = {ranges.shorten(self.sha256, repr)}: expected 64 hex digits")

    def check(self, source: str = "sidecar") -> "Sidecar":
        """Kept for callers of the dataclass era: a Sidecar is checked when it is made."""
        return self


_HEX64 = re.compile(r"[0-9a-f]{64}")
#: A sidecar is a few hundred bytes; anything near this is not one.
MAX_SIDECAR_BYTES = 256 * 1024
MAX_SIDECAR_DEPTH = 16       # the exporter's is 3 (training -> dataset -> files)
#: The largest model file the box reads (the 512-unit benchmark model is about 11 MB).
MAX_MODEL_BYTES = 256 * 1024 * 1024


def sidecar_path(model_path: str | os.PathLike) -> Path:
    return Path(model_path).with_suffix(".json")


def write_sidecar(model_path: str | os.PathLike, sidecar: Sidecar) -> Path:
    path = sidecar_path(model_path)
    path.write_text(json.dumps(msgspec.structs.asdict(sidecar), indent=2) + "\n")
    return path


def read_sidecar(model_path: str | os.PathLike) -> Sidecar | None:
    """The sidecar beside a model, None when there is none, ModelError (one line) when it is broken."""
    path = sidecar_path(model_path)
    raw = read_regular(path, MAX_SIDECAR_BYTES, "model sidecar", ModelError)
    if raw is None:
        return None
    try:
        data = msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:   # not JSON (Infinity and NaN are not JSON)
        raise ModelError(f"{path}: unreadable model sidecar ({one_line(exc, 200)})") from None
    except RecursionError:               # msgspec recurses: thousands of [ deep
        raise ModelError(f"{path}: model sidecar nested deeper than {MAX_SIDECAR_DEPTH} objects or arrays") from None
    if not isinstance(data, dict):
        raise ModelError(f"{path}: model sidecar must be a JSON object")
    if deeper_than(data, MAX_SIDECAR_DEPTH):
        raise ModelError(f"{path}: model sidecar nested deeper than {MAX_SIDECAR_DEPTH} objects or arrays")
    unknown = sorted(set(data) - set(Sidecar.__struct_fields__))
    if unknown:
        raise ModelError(f"{path}: unknown sidecar keys {ranges.shorten(unknown)}")
    try:
        return decode(Sidecar, data, str(path))
    except ConfigError as exc:
        raise ModelError(f"{exc} (a model sidecar)") from None


def model_sha256(data: bytes) -> str:
    """The checksum a sidecar records for its model's bytes."""
    return hashlib.sha256(data).hexdigest()


def check_flatbuffer_header(path: str | os.PathLike, data: bytes) -> None:
    """Cheap structural checks before a runtime sees the bytes (tflite-runtime 2.14 crashes on garbage)."""
    if len(data) < 16 or data[4:8] != b"TFL3":
        raise ModelError(f"model {path}: not a TFLite model (no TFL3 identifier; {len(data)} bytes)")
    root = int.from_bytes(data[:4], "little")
    if not 8 <= root < len(data) - 4:
        raise ModelError(f"model {path}: corrupt TFLite file (root offset {root} outside {len(data)} bytes)")
