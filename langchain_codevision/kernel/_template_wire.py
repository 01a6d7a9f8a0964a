"""The kernel template's wire format, one definition for the host and the template.

The host (``_forkserver``) and the template process (``_template``, run as a script with
this folder on its path) both import it; it uses the standard library alone.
"""

from __future__ import annotations

import struct

__all__ = ["REPLY", "REQUEST", "REQUEST_TAG"]

REQUEST_TAG = b"F"
"""The first byte of every request: fork a kernel."""
REQUEST = struct.Struct("=cQ")
"""``REQUEST_TAG``, then the host's number for this request."""
REPLY = struct.Struct("=qdqQq")
"""The child's pid (-1: none), the template's fork time (s), 1 if an init, the request's
number (the host drops a reply to an earlier request it gave up on), the errno of a fork
that failed (0: none)."""
