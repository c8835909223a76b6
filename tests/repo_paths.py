"""Where the repository and the tests folder are, for tests in any subfolder of tests/."""

from pathlib import Path

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
