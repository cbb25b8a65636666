"""The end-of-run log scan really finds a leaked secret (so a clean run means something)."""

from __future__ import annotations

import logging

from tests.secrets_scan import CaptureAll, leaks


def test_scan_finds_a_secret_in_a_log_record() -> None:
    capture = CaptureAll()
    log = logging.getLogger("yunguan.test.leak")
    log.addHandler(capture)
    try:
        log.warning("connecting with password %s", "hunter2-canary")
        log.info("nothing to see")
    finally:
        log.removeHandler(capture)
    found = leaks(capture.lines, {"hunter2-canary", "absent"})
    assert len(found) == 1
    assert found[0][1] == "yunguan.test.leak: connecting with password hunter2-canary"
