"""Numbers on the chat pages."""

from __future__ import annotations

import pytest

from chat.templatetags.chat_format import tokens_short


@pytest.mark.parametrize(("tokens", "shown"), [(None, ""), (512, "512"), (16385, "16k"), (1_048_576, "1.05M")])
def test_it_shortens_context_lengths(tokens, shown):
    assert tokens_short(tokens) == shown
