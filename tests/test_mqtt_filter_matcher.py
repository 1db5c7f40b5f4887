"""The compiled filter test (hub.wire) decides exactly as the spec's level-by-level reading does."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from hub.mqtt import WildcardIndex, covers
from hub.wire import filter_matcher, topic_matches


def spec_matches(pattern: str, topic: str) -> bool:
    """MQTT 3.1.1 §4.7 read level by level: the reference the compiled test is held to."""
    if topic.startswith("$") and pattern[:1] in ("+", "#"):
        return False
    pat = pattern.split("/")
    top = topic.split("/")
    for i, level in enumerate(pat):
        if level == "#":
            return True
        if i >= len(top):
            return False
        if level != "+" and level != top[i]:
            return False
    return len(pat) == len(top)


LEVELS = ["", "a", "b", "$SYS", "x.y", "a+b", "tele", "ünï", "line\nbreak"]
FILTER_LEVELS = [*LEVELS, "+"]


def _filters() -> list[str]:
    out = []
    for n in range(1, 4):
        for levels in itertools.product(FILTER_LEVELS, repeat=n):
            out.append("/".join(levels))
            out.append("/".join((*levels, "#")))
    return [*out, "#"]


def _topics() -> list[str]:
    return ["/".join(levels) for n in range(1, 4) for levels in itertools.product(LEVELS, repeat=n)]


def test_every_small_filter_and_topic_agree() -> None:
    topics = _topics()
    for f in _filters():
        match = filter_matcher(f)
        wrong = [t for t in topics if bool(match(t)) != spec_matches(f, t)]
        assert not wrong, (f, wrong[:5])


level = st.sampled_from(LEVELS) | st.text(max_size=4).filter(lambda s: "/" not in s and "+" not in s and "#" not in s)


@given(
    st.lists(level | st.just("+"), min_size=1, max_size=5),
    st.booleans(),
    st.lists(level, min_size=1, max_size=6),
)
def test_random_filters_and_topics_agree(filter_levels: list[str], multi: bool, topic_levels: list[str]) -> None:
    f = "/".join([*filter_levels, "#"] if multi else filter_levels)
    t = "/".join(topic_levels)
    assert bool(filter_matcher(f)(t)) == topic_matches(f, t) == spec_matches(f, t)


def test_the_wildcard_index_misses_no_filter_that_matches_or_covers() -> None:
    # Candidates may include filters that do not match; never leave out one that does.
    filters = [f for f in _filters() if {"+", "#"} & set(f.split("/"))]
    index: WildcardIndex[None] = WildcardIndex()
    for f in filters:
        index.add(f, None)
    for t in _topics():
        offered = {f for f, _ in index.candidates(t)}
        assert {f for f in filters if spec_matches(f, t)} <= offered, t
    for name in _filters():
        offered = {f for f, _ in index.candidates(name)}
        assert {f for f in filters if covers(f, name)} <= offered, name
