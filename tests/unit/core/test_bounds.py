"""bounds: what a record keeps is cut to size, says what was cut, and is measured cheaply."""

from __future__ import annotations

import gc
import re
import tracemalloc
from typing import Any
from urllib.parse import parse_qsl

import pytest

from debug_toolbar.core.bounds import (
    MAX_PAIRS,
    bound,
    clip,
    first_pairs,
    first_query_params,
    full_length,
    share,
    shorten,
)

MEGABYTE = 1024 * 1024


class TestShorten:
    def test_a_short_value_is_kept_as_is(self) -> None:
        text = "x" * 300
        assert shorten(text, 300) is text

    def test_a_long_value_is_cut_to_the_limit_and_says_its_full_size(self) -> None:
        text = "q=" + "a" * (MEGABYTE - 2)
        short = shorten(text, 4096)
        assert len(short) == 4096
        kept = short.index("…")
        assert short[:kept] == text[:kept]
        assert short[kept:] == f"…(1,048,576 characters, {MEGABYTE - kept:,} not kept)"
        assert full_length(short) == MEGABYTE

    def test_shortening_twice_changes_nothing(self) -> None:
        short = shorten("b" * 10_000, 500)
        assert shorten(short, 500) is short

    def test_keep_end_keeps_the_start_and_the_end(self) -> None:
        text = "Traceback (most recent call last):\n" + "  frame\n" * 5000 + "ValueError: bad"
        short = shorten(text, 1000, keep_end=True)
        assert len(short) <= 1000
        assert short.startswith("Traceback (most recent call last):")
        assert short.endswith("ValueError: bad")
        note = re.search(r" …\(([\d,]+) characters, ([\d,]+) not kept\)… ", short)
        assert note is not None
        kept = len(short) - len(note.group(0))
        assert note.group(1) == f"{len(text):,}"
        assert note.group(2) == f"{len(text) - kept:,}"

    def test_full_length_of_an_uncut_value_is_its_length(self) -> None:
        assert full_length("plain text (12 characters)") == 26


class TestClip:
    def test_short_text_is_untouched(self) -> None:
        assert clip("/items/1", 20) == "/items/1"

    def test_cut_for_display_with_the_full_length(self) -> None:
        assert clip("a" * 50, 10) == "aaaaaaaaaa…(50 characters)"

    def test_the_original_length_of_a_value_the_record_already_cut(self) -> None:
        kept = shorten("z" * MEGABYTE, 4096)
        assert clip(kept, 10) == "zzzzzzzzzz…(1,048,576 characters)"


class TestPairs:
    def test_first_pairs_counts_the_rest(self) -> None:
        pairs = [(f"h{i}", "v") for i in range(MAX_PAIRS + 7)]
        kept, dropped = first_pairs(pairs)
        assert kept == pairs[:MAX_PAIRS]
        assert dropped == 7

    def test_few_pairs_are_all_kept(self) -> None:
        assert first_pairs(iter([("a", "1")])) == ([("a", "1")], 0)

    @pytest.mark.parametrize(
        "query",
        [
            "",
            "a=1",
            "tag=a&tag=b&empty=&q=caf%C3%A9",
            "a=1&&b=2&",
            "&&&",
            "x+y=%20z&flag",
        ],
    )
    def test_a_small_query_string_parses_like_parse_qsl(self, query: str) -> None:
        expected = [list(pair) for pair in parse_qsl(query, keep_blank_values=True)]
        assert first_query_params(query) == (expected, 0)

    @pytest.mark.parametrize(
        "query",
        [
            "&".join(f"k{i}=v" for i in range(200_000))[:MEGABYTE],
            "&&".join(f"k{i}=v" for i in range(500)) + "&&&",
            "&" + "&".join("x" for _ in range(150)),
        ],
    )
    def test_a_large_query_string_keeps_the_first_fields_and_counts_the_others(
        self, query: str
    ) -> None:
        everything = [list(pair) for pair in parse_qsl(query, keep_blank_values=True)]
        kept, dropped = first_query_params(query, 100)
        assert kept == everything[: len(kept)]
        assert len(kept) + dropped == len(everything)
        assert 0 < len(kept) <= 100


class TestBound:
    def test_long_strings_anywhere_are_shortened_and_the_rest_is_shared(self) -> None:
        long = "v" * 10_000
        untouched = [{"name": "short", "value": "fine"}]
        stats: dict[str, Any] = {
            "headers": [["x-big", long], ["x-small", "1"]],
            "nested": {"deep": ({"text": long},)},
            "untouched": untouched,
            "count": 3,
            "ratio": 0.5,
            "flag": True,
            "nothing": None,
        }
        bounded, _ = bound(stats, 1000)
        assert bounded is not stats
        assert 900 < len(bounded["headers"][0][1]) <= 1000
        assert full_length(bounded["headers"][0][1]) == 10_000
        assert bounded["headers"][1] is stats["headers"][1]
        assert isinstance(bounded["nested"]["deep"], tuple)
        assert full_length(bounded["nested"]["deep"][0]["text"]) == 10_000
        assert bounded["untouched"] is untouched
        assert (bounded["count"], bounded["ratio"], bounded["flag"], bounded["nothing"]) == (
            3,
            0.5,
            True,
            None,
        )
        assert stats["headers"][0][1] is long  # the panel's own data is not changed

    def test_nothing_to_shorten_returns_the_same_object(self) -> None:
        stats = {"records": [{"message": "hello"}], "dropped": 0}
        assert bound(stats, 100)[0] is stats

    def test_long_keys_are_shortened_too(self) -> None:
        bounded, _ = bound({"k" * 5000: 1, "short": 2}, 300)
        keys = list(bounded)
        assert len(keys[0]) == 300
        assert full_length(keys[0]) == 5000
        assert keys[1] == "short"

    def test_without_a_limit_only_measures(self) -> None:
        stats = {"text": "t" * 5000}
        bounded, size = bound(stats, None)
        assert bounded is stats
        assert size > 5000

    def test_size_grows_with_what_is_kept(self) -> None:
        small = bound({"v": "a" * 100}, None)[1]
        large = bound({"v": "a" * 100_000}, None)[1]
        assert large - small == 100_000 - 100

    def test_a_cycle_ends(self) -> None:
        loop: list[Any] = ["x"]
        loop.append(loop)
        bounded, size = bound(loop, 100)
        assert bounded is loop
        assert size > 0

    def test_shared_data_is_counted_as_a_pointer_and_not_shortened(self) -> None:
        packages = share([{"name": "n" * 2000, "version": "1.0"} for _ in range(50)])
        alone = bound({"packages": packages}, 300)
        assert alone[0]["packages"] is packages
        assert alone[1] < 500

    def test_the_estimate_is_close_to_the_memory_really_held(self) -> None:
        def build() -> dict[str, Any]:
            return {
                "headers": [[f"x-header-{i}", f"value {i} " * 20] for i in range(100)],
                "records": [
                    {"message": f"message {i} " * 10, "lineno": i, "time": i / 3}
                    for i in range(300)
                ],
            }

        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            stats = build()
            held = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
        estimate = bound(stats, None)[1]
        assert held / 2 < estimate < held * 2
