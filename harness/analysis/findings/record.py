"""A finding as data: the question, who won, against whom, by how much, how sure, and the
trials that show it.

The sentences (``headline``, ``text``), the report's "What to run" table, findings.json and
``harness compare`` all read these records; compare never reads the sentences, so rewording a
sentence changes no verdict.

>>> f = Finding(topic="wsgi_vs_asgi", run_id="r", text="...", verdict=RANKED,
...             winners=("uvicorn",), others=("gunicorn-sync",), ratio=83.2)
>>> f.answer()
('ranked', ('uvicorn',))
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# The verdicts. RANKED: the comparison named winners (significant over repeats, or beyond the
# single-run noise); NO_DIFFERENCE: compared, and no significant difference; NOT_RANKED: the
# measurement cannot rank them (both at the load's own ceiling, a lower bound); STATED: a
# measured fact, not a comparison (each server's capacity, a level a server did not keep up).
RANKED = "ranked"
NO_DIFFERENCE = "no_difference"
NOT_RANKED = "not_ranked"
STATED = "stated"
VERDICTS = (RANKED, NO_DIFFERENCE, NOT_RANKED, STATED)
FINDINGS_FILE = "findings.json"
# findings.json's own version: bumped when a field changes meaning.
FINDINGS_SCHEMA = 1
# The first layer's sentences aim under this length (docs/method.md: the answer first).
HEADLINE_CHARS_MAX = 200


@dataclass(frozen=True, kw_only=True)
class Finding:
    """One finding of one run.

    ``winners``: the servers a comparison named (a tied group); ``others``: the other side
    (for a statement, the servers it is about). ``ratio``/``ratio_ci``: winners' figure over
    the other side's, with the 95 % confidence interval of that ratio when repeats allow;
    ``figures``: (winners' figure, other side's) in ``unit``. ``question``: what was asked
    (the work, the level or objective). ``headline``: the first layer's short sentence;
    ``text``: the full one, with every figure, interval and test. ``trial_ids``: the rows of
    trials.csv the numbers came from; ``values``: the unrounded numbers in ``text``.
    """

    topic: str
    run_id: str
    text: str
    headline: str = ""
    question: Mapping[str, Any] = field(default_factory=dict)
    verdict: str = ""  # one of VERDICTS; empty: from ``values["ranked"]``, else STATED
    why: str = ""
    winners: tuple[str, ...] = ()
    others: tuple[str, ...] = ()
    ratio: float | None = None
    ratio_ci: tuple[float, float] | None = None
    figures: tuple[float, float] | None = None
    unit: str = ""
    test: str = ""
    p_value: float | None = None
    trial_ids: tuple[str, ...] = ()
    values: Mapping[str, float] = field(default_factory=dict)
    caveat: bool = False

    def __post_init__(self) -> None:
        if not self.verdict:
            ranked = self.values.get("ranked")
            verdict = STATED if ranked is None else RANKED if ranked == 1.0 else NO_DIFFERENCE
            object.__setattr__(self, "verdict", verdict)
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict {self.verdict!r}: expected one of {', '.join(VERDICTS)}")

    @property
    def ranked(self) -> bool:
        return self.verdict == RANKED

    @property
    def short(self) -> str:
        """The first layer's sentence: ``headline``, else the full text."""
        return self.headline or self.text

    def answer(self) -> tuple[Any, ...]:
        """What a second run must repeat for this finding to hold (``harness compare``): the
        winners of a ranking, whoever the losing side's tied group holds; nothing more for a
        comparison that names no winner; the servers a statement is about."""
        if self.verdict in (NO_DIFFERENCE, NOT_RANKED):
            return ("unranked",)
        if self.verdict == RANKED:
            return (RANKED, self.winners)
        return (STATED, self.winners, self.others)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["values"] = {k: _plain(v) for k, v in self.values.items()}
        for key in ("ratio", "p_value"):
            data[key] = _plain(data[key])
        data["question"] = {k: _plain(v) for k, v in self.question.items()}
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Finding:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        for key in ("winners", "others", "trial_ids"):
            known[key] = tuple(known.get(key) or ())
        for key in ("ratio_ci", "figures"):
            if known.get(key) is not None:
                known[key] = tuple(known[key])
        return cls(**known)


def _plain(value: Any) -> Any:
    """A JSON-safe number: NaN and infinities become None; numpy scalars plain floats."""
    if value is None or isinstance(value, str | bool):
        return value
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    return None if math.isnan(number) or math.isinf(number) else number


def write_findings(path: Path, findings: Iterable[Finding], **header: Any) -> Path:
    """findings.json: the schema version, ``header`` (what the findings are of), the records.
    Written beside and renamed into place, so a reader never sees half a file."""
    data = {"schema": FINDINGS_SCHEMA, **header,
            "findings": [f.to_json() for f in findings]}
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    partial.replace(path)
    return path


def read_findings(path: Path) -> list[Finding]:
    """The records of a findings.json."""
    data = json.loads(path.read_text(encoding="utf-8"))
    return [Finding.from_json(f) for f in data.get("findings", [])]
