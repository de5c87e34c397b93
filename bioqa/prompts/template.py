"""The one template language of every prompt (answers, Phase A, Wikipedia, ensemble): ``{name}`` is a placeholder
when ``name`` is one the prompt fills, every other brace is literal text (a JSON example needs no escaping)."""

from __future__ import annotations

import re
from collections.abc import Collection

#: ``{identifier}``: what a placeholder looks like (``{"answer": ...}`` or ``{{`` never does).
PLACEHOLDER = re.compile(r"\{([A-Za-z_]\w*)\}")


def fill(template: str, **values: object) -> str:
    """Replace ``{name}`` for the given names in one pass (a value's own braces are never read again); other
    braces stay as they are."""
    return PLACEHOLDER.sub(lambda m: str(values[m.group(1)]) if m.group(1) in values else m.group(0), template)


def check_template(text: str, allowed: Collection[str], required: Collection[str] = ()) -> None:
    """Raise ``ValueError`` for a placeholder ``text`` would leave unfilled (a typo) or a required one it lacks."""
    unknown = sorted({name for name in PLACEHOLDER.findall(text) if name not in allowed})
    if unknown:
        names = ", ".join(f"{{{n}}}" for n in unknown)
        known = ", ".join(f"{{{n}}}" for n in allowed) or "none"
        raise ValueError(f"unknown placeholder {names} (this prompt fills: {known}; other braces are literal)")
    lacking = [name for name in required if f"{{{name}}}" not in text]
    if lacking:
        raise ValueError(f"no {', '.join(f'{{{n}}}' for n in lacking)} placeholder")
