"""From a chosen candidate to a generation in flight: the cache read or written, the reply planned, the
web search made, and what it will all be billed."""

from __future__ import annotations

from openrouter.simulator.caching import use_cache
from openrouter.simulator.charges import Charges
from openrouter.simulator.chat import Candidate, ChatRequest
from openrouter.simulator.delivery import Completion
from openrouter.simulator.faults import FaultSpec
from openrouter.simulator.replies import plan_reply
from openrouter.simulator.search import Search, run_search
from openrouter.simulator.state import SimState
from openrouter.simulator.textgen import content_text


def start_completion(
    state: SimState, chat: ChatRequest, chosen: Candidate, response_key: str | None = None
) -> Completion:
    """The generation for `chat` on the chosen model (begun: it will be billed however it ends).
    `response_key`: the request asked for response caching; when that key is cached, the reply (a function
    of the request) is replayed at once, with no fault, delay or charge (`response_cache`)."""
    model, endpoint = chosen.model, chosen.endpoint
    if response_key is not None and response_key in state.response_cache:
        spec = FaultSpec(tokens=chosen.spec.tokens, ttft=0, tps=0)
        reply = plan_reply(state, chat, model, spec, images=chosen.images)
        search = Search()
        if chat.search is not None:
            query = content_text(chat.messages[-1].get("content"))
            search = run_search(chat.search, endpoint, query, "".join(reply.content))
        charges = Charges(endpoint, 0, files=chosen.files, search=search)
        return Completion(state, chat, model, spec, reply, charges, response_key=response_key, cache_hit=True)
    cache = use_cache(state, model, endpoint, chat.messages, chat.body)
    reply = plan_reply(state, chat, model, chosen.spec, images=chosen.images)
    search = Search()
    if chat.search is not None:
        query = content_text(chat.messages[-1].get("content"))
        search = run_search(chat.search, endpoint, query, "".join(reply.content))
    charges = Charges(endpoint, chat.prompt_tokens + chosen.files.tokens, cache, chosen.files, search)
    return Completion(state, chat, model, chosen.spec, reply, charges, response_key=response_key)
