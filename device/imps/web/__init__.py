"""The box's own web page (`imps web`): see it, steer it and look after it from a phone.

Its own process, beside the box, talking to it only through what the box
already offers: the loopback OSC control port (``box_link.py``), the status
file the box writes (``[status] file``), SIGHUP to reload, and the files under
its folders (``files.py``). A crash or a flood of requests here costs the
music nothing.

- ``auth.py``: the password (salted scrypt), sessions, CSRF tokens, the login rate limit, the one-time token
- ``multipart.py``: a bounded, strict multipart/form-data reader (uploads)
- ``files.py``: names inside a folder only (no ``..``, no symlinks out); models and logs listed
- ``box_link.py``: the control port, the status file, reload, the live gestures from the log
- ``routes.py``: the route table, one small function per route (the one place to read what the page can do)
- ``server.py``: the standard library's ThreadingHTTPServer, bounded, with the security headers and TLS
- ``command.py``: ``imps web`` and ``imps web password``
- ``static/``: the page itself (HTML, CSS, JS), served by the box, nothing from the internet

See docs/web.md.
"""
