"""What writes a refactor's text: the local engine (a Session of the largest loaded tier) or a configured remote
server (pyserver/tiers/remote.py), behind one call: write(prefix, suffix, ...) -> the text that goes after prefix
(and before suffix when it is given: fill-in-the-middle), or None when stopped.

A model whose chat template is ChatML (Qwen3: Ternary-Bonsai) is an instruction-following model: it is asked
through its template (`chat_prompt`), with the code as the user's turn and its answer started with the code just
before the gap, which it continues; other models get the code itself (fill-in-the-middle where they have the
tokens)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from pyserver.completion.prompt import fim_prompt, split_at_line_start
from pyserver.engine import Session
from pyserver.engine.chat_template import ChatMarkers, Message, chatml_ids, is_chatml, knows_thinking
from pyserver.engine.sampling import Sampler, SamplerConfig
from pyserver.engine.tokenizer import Tokenizer
from pyserver.refactor.common import run
from pyserver.tiers.remote import RemoteUnavailable

FENCE = "```"
GAP = "<FILL>"  # where the answer goes, in the code shown to a chat model
CONTINUE = "Continue this code from exactly where it stops. Answer with code only: what comes next."
FILL = f"Write the code that goes where {GAP} stands. Answer with code only, going on from the lines before it."
TAIL_LINES = 4  # the lines before the gap that open a chat model's answer (it goes on from them)
SUFFIX_SHARE = 4  # the code after the gap gets at most this share of the budget
CUT_ROUNDS = 12


def _request(code: str, suffix: str | None) -> str:
    """The user's turn: the instruction, then the code in a fence (GAP where the answer goes)."""
    if suffix is not None:
        return f"{FILL}\n\n{FENCE}\n{code}{GAP}{suffix}\n{FENCE}"
    return f"{CONTINUE}\n\n{FENCE}\n{code}{'' if not code or code.endswith(chr(10)) else chr(10)}{FENCE}"


def chat_prompt(
    tok: Tokenizer,
    head: str,
    forced: str,
    suffix: str | None,
    budget: int,
    think_block: bool = True,
    markers: ChatMarkers | None = None,
) -> list[int]:
    """A ChatML prompt (thinking off) asking for the text after `head + forced` (and before `suffix`): the
    instruction and the code as the user's turn, then the answer opened with a fence and the last TAIL_LINES lines
    of `head` (the forced partial line follows in the generation). At most `budget` tokens: the suffix is cut to
    its share first (keeping its start), then whole lines go from the start of the code (keeping its end, nearest
    the gap)."""
    opening = f"{FENCE}\n" + "".join(head.splitlines(keepends=True)[-TAIL_LINES:])
    lines = (head + forced).splitlines(keepends=True)
    after = suffix
    ids: list[int] = []
    for _ in range(CUT_ROUNDS):
        user = Message("user", _request("".join(lines), after))
        ids = chatml_ids(tok, [user], think_block=think_block, assistant_prefix=opening, markers=markers)
        over = len(ids) - budget
        if over <= 0:
            return ids
        if after and len(tok.encode(after)) > budget // SUFFIX_SHARE:
            after = after[: len(after) // 2]
        elif len(lines) > 1:  # drop about the share of lines that is over (and a little more)
            lines = lines[min(len(lines) - 1, int(len(lines) * 1.1 * over / len(ids)) + 1) :]
        else:
            break
    return ids[-budget:] if budget > 0 else []


class Writer(Protocol):
    name: str

    def write(
        self,
        prefix: str,
        suffix: str | None,
        max_tokens: int,
        stop: Sequence[str],
        should_stop: Callable[[], bool],
        sampler: SamplerConfig | None = None,
        on_text: Callable[[str], None] | None = None,
    ) -> str | None: ...


class LocalWriter:
    """The engine: the prompt's last line is left out and forced (token healing, see `split_at_line_start`) unless
    `heal` is off; the prompt keeps its end when it must be cut to the context."""

    def __init__(self, session: Session, heal: bool = True) -> None:
        self.session = session
        self.heal = heal
        self.name = Path(str(session.model.path)).name

    def write(
        self,
        prefix: str,
        suffix: str | None,
        max_tokens: int,
        stop: Sequence[str],
        should_stop: Callable[[], bool],
        sampler: SamplerConfig | None = None,
        on_text: Callable[[str], None] | None = None,
    ) -> str | None:
        s = self.session
        tok = s.model.tokenizer
        assert tok is not None
        head, forced = split_at_line_start(prefix) if self.heal else (prefix, "")
        budget = s.n_ctx - max_tokens
        chosen = Sampler(sampler) if sampler is not None else None
        template = s.model.traits.chat_template
        markers = ChatMarkers.of(tok) if is_chatml(template) else None
        if markers is not None:
            prompt = chat_prompt(tok, head, forced, suffix, budget, knows_thinking(template), markers)
            # The answer ends at its closing fence or at the end of the turn (whatever the file calls its EOS).
            stops = tok.special.stop_ids | {markers.end}
            return run(s, prompt, max_tokens, [*stop, FENCE], should_stop, forced, chosen, on_text, sorted(stops))
        if suffix is None:
            prompt = tok.encode(head)[-budget:]
        else:
            prompt = fim_prompt(tok, head, suffix, budget, order=s.model.traits.fim_order)
        return run(s, prompt, max_tokens, stop, should_stop, forced, chosen, on_text)


class FallbackWriter:
    """The remote server first; when it cannot be reached (or fails mid-way), the local writer, for this call and
    the rest of the job."""

    def __init__(self, remote: Writer, local: Callable[[], Writer]) -> None:
        self._remote: Writer | None = remote
        self._local = local
        self.name = remote.name
        self.fell_back = ""

    def write(
        self,
        prefix: str,
        suffix: str | None,
        max_tokens: int,
        stop: Sequence[str],
        should_stop: Callable[[], bool],
        sampler: SamplerConfig | None = None,
        on_text: Callable[[str], None] | None = None,
    ) -> str | None:
        if self._remote is not None:
            try:
                return self._remote.write(prefix, suffix, max_tokens, stop, should_stop, sampler, on_text)
            except RemoteUnavailable as exc:
                self.fell_back = str(exc)
                self._remote = None
        local = self._local()
        self.name = local.name
        return local.write(prefix, suffix, max_tokens, stop, should_stop, sampler, on_text)
