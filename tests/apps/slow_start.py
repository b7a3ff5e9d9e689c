"""An app that takes seconds to import (a worker "still starting"), for SIGTERM tests."""

from __future__ import annotations

import os
import time
from pathlib import Path

from bananas import Registry

Path(os.environ["TEST_MARKER"]).touch()  # the test waits for this
time.sleep(20)
registry = Registry()
