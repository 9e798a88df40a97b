"""What writes a refactor's text: the local engine (a Session of the largest loaded tier) or a configured remote
server (pyserver/tiers/remote.py), behind one call: write(prefix, suffix, ...) -> the text that goes after prefix
(and before suffix when it is given: fill-in-the-middle), or None when stopped."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from pyserver.completion.prompt import fim_prompt, split_at_line_start
from pyserver.engine import Session
from pyserver.engine.sampling import Sampler, SamplerConfig
from pyserver.refactor.common import run
from pyserver.tiers.remote import RemoteUnavailable


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
        if suffix is None:
            prompt = tok.encode(head)[-budget:]
        else:
            prompt = fim_prompt(tok, head, suffix, budget, order=s.model.traits.fim_order)
        chosen = Sampler(sampler) if sampler is not None else None
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
