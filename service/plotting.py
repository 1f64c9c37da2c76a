"""pyplot for the service: a headless backend, and one lock for every drawing.

pyplot keeps one current figure per process, and requests draw from several threads: every drawing
with pyplot in the service (evolve.png, and ultralytics' plot_labels for a data set) holds
PYPLOT_LOCK.
"""

from __future__ import annotations

import threading

import matplotlib

matplotlib.use("Agg")

PYPLOT_LOCK = threading.Lock()
