"""The rule that picks the int8 .onnx variant from timings keeps the same file under noisy timings.

`tuning.clearly_faster` is fed per-round p50s (ms) as `tuning.time_together` records them: a
candidate that is faster in one or two rounds only (a burst of load on the machine while the kept
file ran) must not replace the kept one; one that is faster in (nearly) every round must.
"""

from __future__ import annotations

from edgekit.formats.onnx.tuning import MARGIN, ROUNDS, WINS_NEEDED, clearly_faster

KEPT = [0.0221, 0.0220, 0.0223, 0.0219, 0.0222, 0.0221, 0.0220]


def test_a_candidate_faster_in_every_round_replaces_the_kept_file():
    assert len(KEPT) == ROUNDS
    assert clearly_faster([p * 0.7 for p in KEPT], KEPT)


def test_a_burst_of_load_during_one_round_does_not_change_the_file():
    noisy = list(KEPT)
    noisy[3] = 0.060  # the machine was busy while the kept file ran this round
    slightly_slower = [p * 1.003 for p in KEPT]
    assert not clearly_faster(slightly_slower, noisy)


def test_the_win_must_hold_in_wins_needed_rounds():
    faster = [p * 0.7 for p in KEPT]
    just_enough = faster[:WINS_NEEDED] + KEPT[WINS_NEEDED:]
    one_short = faster[:WINS_NEEDED - 1] + KEPT[WINS_NEEDED - 1:]
    assert clearly_faster(just_enough, KEPT)
    assert not clearly_faster(one_short, KEPT)


def test_a_win_below_the_margin_is_not_a_win():
    assert not clearly_faster([p * (MARGIN + 0.02) for p in KEPT], KEPT)
