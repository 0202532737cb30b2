"""Graceful shutdown of the session daemon, checked after every other test has used it.

SIGTERM must make the daemon exit 0 within 10 seconds, and (under ASan/UBSan) its stderr must
hold no sanitizer report: a leak, a use-after-free or undefined behaviour anywhere during the
session fails this test. (Runs last: see pytest_collection_modifyitems in conftest.py.)
"""
import pytest


@pytest.mark.last
def test_graceful_shutdown_after_the_session(daemon):
    assert daemon.alive(), f"the daemon died during the session\n{daemon.tail()}"
    problems = daemon.shutdown_problems()
    assert not problems, "; ".join(problems) + "\n" + daemon.tail(60)
