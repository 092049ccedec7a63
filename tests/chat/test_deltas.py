"""chat.deltas: how far apart a reply's frames go out."""

from __future__ import annotations

import pytest

from chat import deltas


def test_frames_space_out_only_when_the_process_streams_more_than_its_frame_budget(monkeypatch):
    monkeypatch.setattr(deltas, "_streaming", set())
    assert deltas.frame_interval() == deltas.COALESCE
    monkeypatch.setattr(deltas, "_streaming", set(range(200)))
    assert deltas.frame_interval() == pytest.approx(200 / deltas.FRAMES_PER_SECOND)
    monkeypatch.setattr(deltas, "_streaming", set(range(100_000)))
    assert deltas.frame_interval() == deltas.MAX_INTERVAL
