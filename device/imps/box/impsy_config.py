"""IMPSY's config.toml, read as the box's config: one home for the translation.

IMPSY (the tool the box's users come from) keeps its settings in a TOML file
with top-level keys and the sections ``[interaction]``, ``[model]``, ``[osc]``,
``[serial]``, ``[midi]``, ``[websocket]``, ``[serialmidi]`` and ``[webui]``.
``translate`` turns one into the box's config sections and a list of notes:
every IMPSY key is either carried over, carried over with a difference the
user should know, or named as not honoured, with the reason.

One function per IMPSY section (``SECTIONS``), each ``(values, box, notes, ctx)``:
it reads its IMPSY keys, writes box config keys into ``box`` and appends a
``Note`` for every key it cannot carry over exactly. A section the box gains
support for (``[midi]``) replaces its function here and nothing else changes.

Used by ``imps config import impsy.toml`` (prints a box.toml) and by
``imps run --config impsy.toml`` (config.load_config recognises the file).
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError
from ..tomlfile import read_toml

log = logging.getLogger(__name__)

#: IMPSY's interaction modes (impsy/interaction.py INTERACTION_MODES) -> the box's.
MODES = {
    "callresponse": "call_response",   # the model answers when the performer stops
    "polyphony": "layered",            # every performer event gets a predicted companion
    "battle": "duet",                  # the model plays on by itself
    "useronly": "user",
}

#: IMPSY sends its predictions to the [osc] client as /impsy f..; the box sends /model f..
#: (and the performer's own events as /performer f..) to its sound engine.
IMPSY_OUTPUT_ADDRESS = "/impsy"


@dataclass
class Note:
    key: str            # "[section] key" or a top-level "key"
    honoured: bool      # False: the box cannot do what this key asks
    text: str

    def line(self) -> str:
        return f"{self.key}: {self.text}"


@dataclass
class Context:
    source: str         # the IMPSY file, for messages
    base: Path          # IMPSY resolves model paths against its workspace: the config file's directory
    data: dict = field(default_factory=dict)   # the whole IMPSY file ([midi] reads [interaction] input_thru)


def looks_like_impsy(data: dict) -> bool:
    """True for an IMPSY config: it has [interaction], or [model] with IMPSY's keys."""
    model = data.get("model")
    return "interaction" in data or (isinstance(model, dict) and bool({"file", "pitemp", "sigmatemp", "size"} & set(model)))


def _number(where: str, value, low: float | None = None, low_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{where} = {value!r}: expected a number")
    if low is not None and (value <= low if low_open else value < low):
        raise ConfigError(f"{where} = {value!r}: expected a number {'>' if low_open else '>='} {low:g}")
    return float(value)


def _unknown(section: str, values: dict, known: set, notes: list) -> None:
    for key in sorted(set(values) - known):
        notes.append(Note(f"[{section}] {key}", False, "not an IMPSY 1.2 key; ignored"))


# -- one function per IMPSY section -------------------------------------------------------

def top_level(values: dict, box: dict, notes: list, ctx: Context) -> None:
    for key in ("title", "owner", "description"):
        if values.get(key):
            box.setdefault("_comments", []).append(f"{key}: {values[key]}")
    if "log_input" in values and values["log_input"] is not True:
        notes.append(Note("log_input", False, "the box always logs the performer (IMPSY 1.2 does too: "
                                              "it never reads this key)"))
    if values.get("log_predictions") is False:
        notes.append(Note("log_predictions", False, "the box logs the model's events as well as the performer's "
                                                    "(source rnn; `imps-train dataset` leaves them out by default)"))
    if "verbose" in values:
        notes.append(Note("verbose", False, "the box shows a one-line status (and `imps run -v` debug logging) "
                                            "instead of printing every event"))
    _unknown("top level", values, {"title", "owner", "description", "log_input", "log_predictions", "verbose"}, notes)


def interaction(values: dict, box: dict, notes: list, ctx: Context) -> None:
    engine = box.setdefault("engine", {})
    if "mode" in values:
        mode = values["mode"]
        if mode not in MODES:
            raise ConfigError(f"{ctx.source}: [interaction] mode = {mode!r}: expected one of {', '.join(MODES)}")
        engine["mode"] = MODES[mode]
        if mode == "battle":
            notes.append(Note("[interaction] mode", True, "battle plays as the box's duet: the model plays on by "
                                                         "itself, but the performer's events also steer its state "
                                                         "(IMPSY's battle keeps the two apart)"))
    if "threshold" in values:
        engine["response_threshold"] = _number(f"{ctx.source}: [interaction] threshold", values["threshold"], 0, True)
    if values.get("input_thru") is False:
        notes.append(Note("[interaction] input_thru", False, "the box always sends the performer's events to the "
                                                            "sound engine (as /performer f..); a patch that must not "
                                                            "sound them can ignore that address"))
    _unknown("interaction", values, {"mode", "threshold", "input_thru"}, notes)


def model(values: dict, box: dict, notes: list, ctx: Context) -> None:
    m = box.setdefault("model", {})
    engine = box.setdefault("engine", {})
    if "dimension" in values:
        d = values["dimension"]
        if isinstance(d, bool) or not isinstance(d, int) or d < 2:
            raise ConfigError(f"{ctx.source}: [model] dimension = {d!r}: expected an integer >= 2")
        engine["dimension"] = d
    file = values.get("file")
    if not file:
        notes.append(Note("[model] file", False, "no model file: IMPSY plays an untrained dummy model, the box "
                                                 "plays none; it runs in user-only mode and logs the performer"))
        engine["mode"] = "user"
    else:
        path = Path(file).expanduser()
        path = path if path.is_absolute() else ctx.base / path
        if path.suffix != ".tflite":
            path = path.with_suffix(".tflite")
            notes.append(Note("[model] file", False, f"{file}: the box plays .tflite models only; path is set to "
                                                     f"{path.name}, which `impsy convert-tflite -m {file}` "
                                                     "writes; until it exists the box runs in user-only mode"))
        elif not path.exists():
            notes.append(Note("[model] file", True, f"{path} does not exist (yet): the box runs in "
                                                    "user-only mode until it does"))
        m["path"] = str(path)
    if "size" in values:
        notes.append(Note("[model] size", True, "not needed: the box reads units, layers and mixtures from the "
                                                ".tflite (as IMPSY does for .tflite files)"))
    if "pitemp" in values:
        m["pi_temperature"] = _number(f"{ctx.source}: [model] pitemp", values["pitemp"], 0, True)
    if "sigmatemp" in values:
        m["sigma_temperature"] = _number(f"{ctx.source}: [model] sigmatemp", values["sigmatemp"], 0)
    if "timescale" in values:
        engine["time_scale"] = _number(f"{ctx.source}: [model] timescale", values["timescale"], 0, True)
    _unknown("model", values, {"dimension", "file", "size", "pitemp", "sigmatemp", "timescale"}, notes)


def _ipv4(where: str, host: str, box_key: str, notes: list) -> str | None:
    """The box takes IPv4 addresses only; IMPSY also takes host names ("localhost")."""
    import ipaddress
    host = "127.0.0.1" if host == "localhost" else host
    try:
        ipaddress.IPv4Address(host)
        return host
    except ValueError:
        notes.append(Note(where, False, f"{host!r} is a host name; the box's [osc] {box_key} takes an IPv4 "
                                        f"address: put that host's address there (left at the box's default)"))
        return None


def osc(values: dict, box: dict, notes: list, ctx: Context) -> None:
    o = box.setdefault("osc", {})
    o["enabled"] = True
    if "server_ip" in values:
        host = _ipv4("[osc] server_ip", str(values["server_ip"]), "interface_host", notes)
        if host:
            o["interface_host"] = host
    if "server_port" in values:
        o["interface_port"] = int(values["server_port"])
    if "client_ip" in values:
        host = str(values["client_ip"])
        host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host   # as IMPSY coerces it
        host = _ipv4("[osc] client_ip", host, "sound_host", notes)
        if host:
            o["sound_host"] = host
    if "client_port" in values:
        o["sound_port"] = int(values["client_port"])
    if {"client_ip", "client_port"} & set(values):
        notes.append(Note("[osc] client_ip/client_port", True,
                          f"predictions go there as /model f.. (IMPSY sends {IMPSY_OUTPUT_ADDRESS} f..), and the "
                          "performer's events as /performer f..; change the receiving patch's address"))
    if {"server_ip", "server_port"} & set(values):
        notes.append(Note("[osc] server_ip/server_port", True,
                          "/interface f.. is received there as in IMPSY; IMPSY's commands (/impsy/mode, "
                          "/impsy/pitemp, ...) are the box's /mode, /pi_temperature, ... on [osc] control_port"))
    _unknown("osc", values, {"server_ip", "server_port", "client_ip", "client_port"}, notes)


def serial(values: dict, box: dict, notes: list, ctx: Context) -> None:
    s = box.setdefault("serial", {})
    s["enabled"] = True
    s["format"] = "text"            # IMPSY's serial: comma-separated values, one line per event
    if "port" in values:
        s["port"] = [str(values["port"])]
    if "baudrate" in values:
        s["baudrate"] = int(values["baudrate"])
    notes.append(Note("[serial]", False, "IMPSY also writes every output back to the port as a CSV line; the box "
                                         "reads the board's CSV lines (format = \"text\") but sends actuator values "
                                         "only as binary frames (format = \"frames\", firmware/PROTOCOL.md)"))
    _unknown("serial", values, {"port", "baudrate"}, notes)


def midi(values: dict, box: dict, notes: list, ctx: Context) -> None:
    """MIDI devices and mappings (imps.io.midi.impsy); ``input_thru`` sends the performer to the outputs too."""
    from ..io.midi.impsy import midi_section
    _add_midi(midi_section, "midi", values, box, notes, ctx)


def serialmidi(values: dict, box: dict, notes: list, ctx: Context) -> None:
    """DIN MIDI on a UART, unless [serial] reads the same port (one port cannot be both)."""
    from ..io.midi.impsy import serialmidi_section
    port = values.get("port")
    if port is not None and port in box.get("serial", {}).get("port", []):
        notes.append(Note("[serialmidi]", False, f"port {port} is also [serial]'s port, which the box reads as "
                                                 "sensor lines; one port cannot be both, so DIN MIDI is left out"))
        return
    _add_midi(serialmidi_section, "serialmidi", values, box, notes, ctx)


def _add_midi(convert, name: str, values: dict, box: dict, notes: list, ctx: Context) -> None:
    thru = ctx.data.get("interaction", {}).get("input_thru") is True
    try:
        section, said = convert(values, thru)
    except ConfigError as exc:
        raise ConfigError(f"{ctx.source}: [{name}] {exc}") from None
    merged = box.setdefault("midi", {"enabled": True, "input": [], "output": []})
    merged["input"] += section["input"]
    merged["output"] += section["output"]
    notes.extend(Note(key, honoured, text) for key, honoured, text in said)


def unsupported(name: str, why: str):
    def section(values: dict, box: dict, notes: list, ctx: Context) -> None:
        notes.append(Note(f"[{name}]", False, why))
    return section


#: IMPSY section -> its translation (top-level keys go to ``top_level``).
SECTIONS = {
    "interaction": interaction,
    "model": model,
    "osc": osc,
    "serial": serial,
    "midi": midi,
    "serialmidi": serialmidi,
    "websocket": unsupported("websocket", "the box has no WebSocket input or output"),
    "webui": unsupported("webui", "the box has no web interface; it reports through systemd status and its log"),
}


def translate(data: dict, source: str = "IMPSY config", base: Path | None = None) -> tuple[dict, list[Note]]:
    """(box config sections {section: {key: value}}, notes) from a parsed IMPSY config."""
    ctx = Context(source, base or Path.cwd(), data)
    box: dict = {}
    notes: list[Note] = []
    top_level({k: v for k, v in data.items() if not isinstance(v, dict)}, box, notes, ctx)
    for name, values in data.items():
        if not isinstance(values, dict):
            continue
        handler = SECTIONS.get(name)
        if handler is None:
            notes.append(Note(f"[{name}]", False, "not an IMPSY 1.2 section; ignored"))
        else:
            handler(values, box, notes, ctx)
    return box, notes


def read(path: str | Path, data: dict | None = None) -> tuple[dict, list[Note]]:
    """Translate the IMPSY config at ``path`` (``data``: already parsed)."""
    path = Path(path)
    return translate(read_toml(path) if data is None else data, str(path), path.resolve().parent)


def as_box_config(path: str | Path, data: dict) -> dict:
    """For `imps run --config impsy.toml`: the box's sections, each key not honoured logged once."""
    box, notes = read(path, data)
    for note in notes:
        if not note.honoured:
            log.warning("IMPSY config %s: not honoured: %s", path, note.line())
        else:
            log.info("IMPSY config %s: %s", path, note.line())
    return {k: v for k, v in box.items() if not k.startswith("_")}


# -- writing a box.toml ---------------------------------------------------------------------

def box_toml(box: dict, notes: list[Note], source: str) -> str:
    """The box's config file for a translated IMPSY config, the notes as comments on top.
    The TOML itself is tomli_w's (any string or key, escaped as TOML wants), imported only here."""
    import tomli_w
    lines = [f"# IMPS box config imported from the IMPSY config {source} by `imps config import`.",
             "# Every key is documented in device/imps/box.example.toml."]
    lines += [f"# {c}" for c in box.get("_comments", [])]
    lost = [n for n in notes if not n.honoured]
    differs = [n for n in notes if n.honoured]
    if lost:
        lines.append("#\n# Not honoured:")
        lines += [f"#   {n.line()}" for n in lost]
    if differs:
        lines.append("#\n# Carried over, but note:")
        lines += [f"#   {n.line()}" for n in differs]
    sections = {name: values for name, values in box.items() if not name.startswith("_") and values}
    comments = "\n".join(lines).replace("\r", " ").split("\n")   # a note's newline must not end the comment
    return "\n".join(line if line.startswith("#") else "# " + line for line in comments) + "\n\n" + \
        tomli_w.dumps(sections)
