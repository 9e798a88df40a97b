"""The local API as a new user meets it (issue 29's walk-through): `python -m pyserver api` started with the given
Python, then the `openai` client: a completion, a chat, a chat with a file attached that is longer than the context,
`n`, `tools`, `logprobs`, fill-in-the-middle, and a second server on the taken port. Prints JSON.

    python api_walk.py SERVER_PYTHON [PORT]     (RYZANSTEIN_MODEL_DIR as the extension sets it, if needed)
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import openai


def attempt(what: str, call: Any) -> dict[str, Any]:
    try:
        out = call()
        return {"what": what, "ok": True, "answer": out}
    except openai.APIStatusError as exc:
        return {"what": what, "ok": False, "status": exc.status_code, "error": str(exc)[:300]}
    except Exception as exc:  # noqa: BLE001 - a walk-through records what happens
        return {"what": what, "ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}


def main(python: str, port: int) -> list[dict[str, Any]]:
    server = subprocess.Popen(
        [python, "-m", "pyserver", "api", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd="/tmp",
    )
    base = f"http://127.0.0.1:{port}/v1"
    for _ in range(120):
        try:
            httpx.get(base + "/models", timeout=1)
            break
        except httpx.HTTPError:
            time.sleep(0.5)
    c = openai.OpenAI(base_url=base, api_key="none", max_retries=0, timeout=120)
    model = c.models.list().data[0].id
    big = Path(__file__).read_text() * 6  # a file attached to a chat: several thousand tokens
    fim_prefix = "def read(path):\n    with open(path) as f:\n"
    fim_suffix = "\n\n\ndef write(path, text):\n    with open(path, 'w') as f:\n        f.write(text)\n"
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}
    out = [
        attempt(
            "completion",
            lambda: (
                c.completions.create(model=model, prompt="def add(a, b):\n", max_tokens=24, temperature=0)
                .choices[0]
                .text
            ),
        ),
        attempt(
            "chat",
            lambda: (
                c.chat.completions.create(
                    model=model,
                    max_tokens=24,
                    temperature=0,
                    messages=[{"role": "user", "content": "Write a function that adds two numbers."}],
                )
                .choices[0]
                .message.content
            ),
        ),
        attempt(
            "chat with a file attached (longer than the context)",
            lambda: (
                c.chat.completions.create(
                    model=model,
                    max_tokens=32,
                    messages=[{"role": "user", "content": f"Explain this file:\n```\n{big}\n```"}],
                )
                .choices[0]
                .message.content
            ),
        ),
        attempt(
            "n=2",
            lambda: [ch.text for ch in c.completions.create(model=model, prompt="x = ", max_tokens=4, n=2).choices],
        ),
        attempt(
            "tools",
            lambda: (
                c.chat.completions.create(
                    model=model,
                    max_tokens=8,
                    tools=[tool],  # type: ignore
                    messages=[{"role": "user", "content": "hi"}],
                )
                .choices[0]
                .message.content
            ),
        ),
        attempt(
            "chat logprobs",
            lambda: (lambda r: r.choices[0].logprobs and len(r.choices[0].logprobs.content))(
                c.chat.completions.create(
                    model=model,
                    max_tokens=4,
                    logprobs=True,
                    top_logprobs=2,
                    messages=[{"role": "user", "content": "hi"}],
                )
            ),
        ),
        attempt(
            "fill in the middle",
            lambda: (
                c.completions.create(model=model, prompt=fim_prefix, suffix=fim_suffix, max_tokens=96, temperature=0)
                .choices[0]
                .text
            ),
        ),
    ]
    second = subprocess.run(
        [python, "-m", "pyserver", "api", "--port", str(port)], capture_output=True, text=True, timeout=120, cwd="/tmp"
    )
    out.append(
        {
            "what": "a second server on the taken port",
            "exit": second.returncode,
            "stdout": second.stdout[-300:],
            "stderr": second.stderr[-300:],
        }
    )
    server.terminate()
    server.wait(10)
    return out


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 8089), indent=1))
