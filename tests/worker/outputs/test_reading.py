"""What every writer reads the same way (worker/outputs/reading.py): blocks in the result's
order, and each line's words, the engine's or spread along the line as its text runs."""

from __future__ import annotations

from docmill.result import Word
from tests.worker.outputs import hand_line, hand_result, rect
from worker.outputs.reading import blocks, line_words, reading_corners


def test_blocks_are_runs_of_consecutive_lines_in_the_results_order():
    lines = [hand_line(t, rect(0, 0, 10, 10), block=b) for t, b in (("a", 0), ("b", 0), ("c", 2), ("d", 1), ("e", 1))]
    assert [[l.text for l in run] for run in blocks(hand_result(lines, 100, 100))] == [["a", "b"], ["c"], ["d", "e"]]


def test_the_engines_words_are_taken_as_they_are():
    line = hand_line("ab cd", rect(0, 0, 100, 20), words=[("ab", rect(0, 0, 40, 20)), ("cd", rect(60, 0, 100, 20))])
    assert line_words(hand_result([line], 200, 100), line) == list(line.words or [])


def test_without_word_boxes_tokens_share_the_line_in_proportion_to_their_characters():
    line = hand_line("ab  cdef", rect(100, 10, 190, 30))  # "ab cdef": 7 characters over 90 px
    words = line_words(hand_result([line], 400, 100), line)
    assert [w.text for w in words] == ["ab", "cdef"]
    assert words[0].box == rect(100, 10, 126, 30) and words[1].box == rect(139, 10, 190, 30)
    assert all(isinstance(w, Word) and w.score == line.score for w in words)


def test_spread_words_follow_a_turned_pages_text():
    """On a page turned 180 degrees the text runs right to left: the first word is on the
    right; on one turned 90 it runs down: the first word is at the top."""
    upside_down = hand_line("ab cd", rect(100, 10, 150, 30))
    first, second = line_words(hand_result([upside_down], 400, 100, orientation=180), upside_down)
    assert first.box == rect(130, 10, 150, 30) and second.box == rect(100, 10, 120, 30)
    downwards = hand_line("ab cd", rect(10, 100, 30, 150))
    first, second = line_words(hand_result([downwards], 400, 400, orientation=90), downwards)
    assert first.box == rect(10, 100, 30, 120) and second.box == rect(10, 130, 30, 150)


def test_reading_corners_start_where_the_text_starts():
    box = rect(0, 0, 10, 5)
    assert reading_corners(box, 0).tolist() == box
    assert reading_corners(box, 180)[0].tolist() == [10, 5]  # upside down: from the bottom-right
    assert reading_corners(box, 90)[0].tolist() == [10, 0]  # running down: from the top-right
