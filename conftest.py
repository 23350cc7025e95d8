"""Test-suite setup: every test and every notebook kernel runs in the smoke profile on the CPU."""

import os

# Set at import time so the nbval kernels (started from this environment) inherit them.
os.environ["GANKIT_PROFILE"] = "smoke"
os.environ.setdefault("GANKIT_DEVICE", "cpu")
# Not under runs/ (nor a GANKIT_RUNS of the user's): `gankit report` reads the runs root for the instructor's
# report, and smoke runs do not belong in it.
os.environ["GANKIT_RUNS"] = os.path.join(os.path.dirname(os.path.abspath(__file__)), ".test-runs")
os.environ["TQDM_DISABLE"] = "1"
