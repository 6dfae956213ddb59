"""The zstd module rosbags itself uses: the standard library's from Python 3.14, its backport
(``backports.zstd``, in the requirements) before."""

from __future__ import annotations

import sys

if sys.version_info >= (3, 14):
    from compression import zstd
else:
    from backports import zstd

__all__ = ["zstd"]
