"""The hospital course, problem by problem: which facts of the stay belong to which problem.

The problems are the stay's diagnoses (the principal one first), the reasons for admission that
name a problem no diagnosis covers, and the active chronic problems that the stay did something
about. Every result, inpatient medication, procedure and report is claimed by at most one
problem, through the clinical lexicon (``fhirgen.clinical.lexicon``): the most specific problem
first, so each fact is told once. What no problem claims is "other findings".

Both the template and the model backends write the course from this plan, one paragraph per
problem, so a model sees only the facts of the problem it is writing about.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from fhirgen.clinical.facts import Fact, FactKind, FactSet
from fhirgen.clinical.lexicon import Family, family_of
from fhirgen.clinical.wording import distinct_names, plain_name

_ITEM_KINDS = {
    FactKind.LAB: "result",
    FactKind.VITAL: "result",
    FactKind.INPATIENT_MEDICATION: "drug",
    FactKind.PROCEDURE: "procedure",
    FactKind.REPORT: "procedure",
}


@dataclass(frozen=True)
class ProblemCourse:
    """One problem and the facts that tell its course."""

    problem: Fact  # the diagnosis, reason for admission or active problem
    topic: str  # its name as the paragraph's heading
    family: str  # the lexicon family's key ("" when none fits)
    results: tuple[Fact, ...] = ()
    medications: tuple[Fact, ...] = ()
    procedures: tuple[Fact, ...] = ()
    reports: tuple[Fact, ...] = ()
    # Discharge medication changes whose recorded reason is this problem ("stopped: hypotension").
    changes: tuple[Fact, ...] = ()

    @property
    def items(self) -> tuple[Fact, ...]:
        """Every fact the problem claims."""
        return (*self.medications, *self.procedures, *self.reports, *self.results)


@dataclass(frozen=True)
class CoursePlan:
    """The course of a stay: its problems in order of importance, then what none claims."""

    problems: tuple[ProblemCourse, ...]
    other_results: tuple[Fact, ...]
    other_medications: tuple[Fact, ...]
    other_procedures: tuple[Fact, ...]
    other_reports: tuple[Fact, ...]
    claimed_vitals: frozenset[str]  # ids of vital-sign facts told in a problem's course


def plan_course(facts: FactSet) -> CoursePlan:
    """Which facts belong to which problem of the stay (deterministic, each fact once)."""
    return _plan_course(facts)


# The summary, the instructions and the prompts each ask for the same stay's plan.
@lru_cache(maxsize=16)
def _plan_course(facts: FactSet) -> CoursePlan:
    candidates = _candidates(facts)
    families = {c.id: family_of(_codes(c), c.names) for c in candidates}
    claimers = sorted(
        (c for c in candidates if families[c.id] is not None),
        key=lambda c: (families[c.id].claim_order, candidates.index(c)),  # type: ignore[union-attr]
    )
    claimed: dict[str, list[Fact]] = {c.id: [] for c in candidates}
    unclaimed: list[Fact] = []
    for item in facts.of_kind(*_ITEM_KINDS):
        owner = next(
            (c for c in claimers if _claims(families[c.id], item)),  # type: ignore[arg-type]
            None,
        )
        (claimed[owner.id] if owner else unclaimed).append(item)
    problems: list[ProblemCourse] = []
    topics: list[str] = []
    told_changes: set[str] = set()
    for candidate in candidates:
        items = claimed[candidate.id]
        changes = tuple(f for f in _changes_for(candidate, facts) if f.id not in told_changes)
        if candidate.kind is FactKind.PROBLEM and not (_worth_telling(items) or changes):
            unclaimed.extend(items)
            continue
        family = families[candidate.id]
        topic = _topic(candidate)
        if topic.lower() in topics:
            topic = f"{topic} ({len(topics) + 1})"
        topics.append(topic.lower())
        problems.append(
            ProblemCourse(
                problem=candidate,
                topic=topic,
                family=family.key if family else "",
                results=_of(items, FactKind.LAB, FactKind.VITAL),
                medications=_of(items, FactKind.INPATIENT_MEDICATION),
                procedures=_of(items, FactKind.PROCEDURE),
                reports=_of(items, FactKind.REPORT),
                changes=changes,
            )
        )
        told_changes.update(f.id for f in changes)
    order = {f.id: n for n, f in enumerate(facts)}
    unclaimed.sort(key=lambda f: order[f.id])
    told_vitals = frozenset(f.id for p in problems for f in p.results if f.kind is FactKind.VITAL)
    return CoursePlan(
        problems=tuple(problems),
        other_results=_of(unclaimed, FactKind.LAB, FactKind.VITAL),
        other_medications=_of(unclaimed, FactKind.INPATIENT_MEDICATION),
        other_procedures=_of(unclaimed, FactKind.PROCEDURE),
        other_reports=_of(unclaimed, FactKind.REPORT),
        claimed_vitals=told_vitals,
    )


def _candidates(facts: FactSet) -> list[Fact]:
    """Diagnoses (principal first), reasons no diagnosis covers, then active problems."""
    diagnoses = sorted(facts.of_kind(FactKind.DIAGNOSIS), key=lambda f: f.attr("primary") != "yes")
    covered_sources = {s for d in diagnoses for s in d.sources if s.startswith("Condition/")}
    covered_families = {
        family.key for d in diagnoses if (family := family_of(_codes(d), d.names)) is not None
    }
    known = [plain_name(d.name) for d in diagnoses]
    reasons: list[Fact] = []
    for reason in facts.of_kind(FactKind.REASON):
        if any(s in covered_sources for s in reason.sources if s.startswith("Condition/")):
            continue
        family = family_of(_codes(reason), reason.names)
        if diagnoses and (family is None or family.key in covered_families):
            continue  # a presenting symptom, or a problem a diagnosis already tells
        name = plain_name(reason.name)
        if len(distinct_names([*known, name])) == len(known):
            continue  # says again what an earlier problem's name says
        known.append(name)
        reasons.append(reason)
    chosen = [*diagnoses, *reasons, *facts.of_kind(FactKind.PROBLEM)]
    # "History of appendectomy" is a past event, not a problem of this stay.
    return [f for f in chosen if not f.name.lower().startswith(("history of", "h/o "))]


def _changes_for(problem: Fact, facts: FactSet) -> tuple[Fact, ...]:
    """Medication changes whose recorded reason names this problem (or its family)."""
    family = family_of(_codes(problem), problem.names)
    names = [plain_name(n).lower() for n in problem.names if len(n) > 3]
    found = []
    for fact in facts.of_kind(FactKind.MEDICATION):
        reason = fact.attr("reason").lower()
        if not reason:
            continue
        if any(n and n in reason for n in names) or (
            family is not None and family.names and family_of([], [reason]) is family
        ):
            found.append(fact)
    return tuple(found)


def _claims(family: Family, item: Fact) -> bool:
    names = [*item.names, item.text] if item.kind is FactKind.REPORT else list(item.names)
    return family.claims(_ITEM_KINDS[item.kind], names or [item.text])


def _worth_telling(items: Sequence[Fact]) -> bool:
    """A chronic problem gets a paragraph when the stay treated it or found it abnormal."""
    return any(
        f.kind in (FactKind.INPATIENT_MEDICATION, FactKind.PROCEDURE, FactKind.REPORT)
        or f.attr("marked")
        for f in items
    )


def _topic(problem: Fact) -> str:
    name = plain_name(problem.name) or problem.name
    return name[:1].upper() + name[1:]


def _codes(fact: Fact) -> list[str]:
    return [c for c in fact.attr("codes").split(",") if c]


def _of(items: Iterable[Fact], *kinds: FactKind) -> tuple[Fact, ...]:
    return tuple(f for f in items if f.kind in kinds)
