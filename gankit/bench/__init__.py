"""`gankit bench`: throughput against a tutorial-style loop, the kernels-only bound, speed variants.

What was measured and why lives in benchmarks/README.md.
"""

from .throughput import GankitLoop, main, speed_variants

__all__ = ["GankitLoop", "main", "speed_variants"]
