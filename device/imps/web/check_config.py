"""``python -m imps.web.check_config [--facts] FILE``: the box's own loader on a config file, in its own process.

The page runs this before it saves an edited box.toml (and the box's loader
pulls in numpy and the hardware settings, which the page itself never loads).
Exit 0 and "ok", or exit 2 and the one-line error ``settings.decode`` gives.
``--facts`` prints instead, as JSON, what the page needs to know of the box
(its control port, status file, log folder, model and dimension).
"""
from __future__ import annotations

import json
import sys

from ..box.config import load_config
from ..errors import ImpsError


def main(argv=None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    facts = args[:1] == ["--facts"]
    args = args[1:] if facts else args
    if len(args) != 1:
        print("usage: python -m imps.web.check_config [--facts] FILE", file=sys.stderr)
        return 2
    try:
        config = load_config(args[0])
    except ImpsError as exc:
        print(exc)
        return 2
    if facts:
        print(json.dumps(box_facts(config)))
    else:
        print("ok")
    return 0


def box_facts(config) -> dict:
    return {"control_host": config.osc.control_host, "control_port": config.osc.control_port,
            "status_file": config.status.file or None,
            "log_dir": str(config.log.directory) if config.log.enabled else None,
            "model": str(config.model.path) if config.model.path else None,
            "dimension": config.engine.dimension}


if __name__ == "__main__":
    sys.exit(main())
