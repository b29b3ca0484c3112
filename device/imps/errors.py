"""Every exception the box raises, one root class per subsystem.

Each is also a builtin (ValueError, OSError...) so callers that only know the
builtins still catch them. Messages name the file or device, the value and the
likely cause. ``one_line`` is how any of them is shown to a person: one line, cut
to a sane length (a 50 MB config value was once echoed whole in a 100 MB line).
"""

#: The longest error line the box prints or logs (a long path and a value still fit).
MAX_ERROR_LINE = 400


def one_line(error, limit: int = MAX_ERROR_LINE) -> str:
    """``str(error)`` on one line (newlines and tabs become spaces), cut to ``limit`` characters."""
    text = " ".join(str(error).split())
    return text if len(text) <= limit else f"{text[:limit - 30]}... ({len(text)} characters)"


class ImpsError(Exception):
    """Root of all IMPS box errors."""


class LogFormatError(ImpsError, ValueError):
    """An interaction log line or file that cannot be used."""


class DatasetError(ImpsError, ValueError):
    """A dataset that is malformed, empty or too small."""


class ModelError(ImpsError, ValueError):
    """A model file that cannot be loaded or does not fit the configuration."""


class RuntimeMissingError(ModelError, ImportError):
    """Neither tflite-runtime nor ai-edge-litert is installed."""


class ConfigError(ImpsError, ValueError):
    """A configuration key with a wrong value, or an unknown key."""


class SerialFrameError(ImpsError, ValueError):
    """A serial frame that fails its checksum, length or type checks."""


class DeviceError(ImpsError, OSError):
    """A piece of hardware (sensor board, GPIO) that is missing or failing."""


class OscError(ImpsError, ValueError):
    """An OSC packet that breaks the encoding: truncated, unpadded, an unknown type tag."""


class NetworkError(ImpsError, OSError):
    """A socket the box cannot open: a port in use, an address not on this machine."""
