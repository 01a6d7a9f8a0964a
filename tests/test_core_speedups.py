"""The memoized langchain-core lookup answers exactly as the original."""

from __future__ import annotations

from langchain_core.messages import content

import langchain_codevision.loop.messages  # noqa: F401 - installs the cache
from langchain_codevision._core_speedups import install


def test_the_lookup_is_cached_and_answers_as_before() -> None:
    cached = content._get_data_content_block_types
    assert hasattr(cached, "cache_info")
    assert cached() == cached.__wrapped__()
    assert "image" in cached()
    assert install() is True and content._get_data_content_block_types is cached  # idempotent


def test_image_blocks_are_still_told_from_text() -> None:
    image = {"type": "image", "base64": "AAAA", "mime_type": "image/png"}
    assert content.is_data_content_block(image)
    assert not content.is_data_content_block({"type": "text", "text": "hello"})
    assert not content.is_data_content_block({"type": "image"})  # no data at all
