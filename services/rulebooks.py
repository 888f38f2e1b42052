"""The active early-warning rulebook: which one it is, the choices offered, and switching it.

A switch is stored with the rulebook's version, and the indicators of the latest stored day are
levelled again by the new rulebook at once (analytics.rulebooks.assess_areas, as the indicators job
does), each area's change recorded with the choice that caused it, and the switch audited in the
same transaction. Choosing the active rulebook again stores nothing.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, timezone

from analytics.rulebooks import Rulebook, assess_areas
from auth.principal import Principal
from rulebooks import UnknownRulebook, active_rulebook, load_rulebooks
from settings import Settings
from store import Store
from store import queries_indicators as qi
from store import queries_warning as qw
from store.queries_access import append_audit_in, submit_audited
from store.queries_warning import AreaLevel

log = logging.getLogger(__name__)

__all__ = ["RulebookSwitch", "UnknownRulebook", "current_rulebook", "rulebook_options", "set_active_rulebook"]


def current_rulebook(store: Store, settings: Settings) -> Rulebook:
    """The operator's latest choice if it is still configured, else early_warning.active_rulebook."""
    choice = qw.latest_rulebook_choice(store)
    return active_rulebook(load_rulebooks(settings), None if choice is None else choice["rulebook_id"],
                           settings.early_warning.active_rulebook)


def rulebook_options(settings: Settings) -> tuple[tuple[str, str], ...]:
    return tuple((rb.id, f"{rb.name} (v{rb.version})") for rb in load_rulebooks(settings).values())


@dataclass(frozen=True)
class RulebookSwitch:
    """What a switch did: the choice stored (None when the rulebook was already active) and level changes."""
    rulebook_id: str
    rulebook_version: str
    previous_id: str
    previous_version: str
    choice_id: int | None
    level_changes: int
    as_of: date | None

    @property
    def changed(self) -> bool:
        return self.choice_id is not None


def set_active_rulebook(store: Store, settings: Settings, rulebook_id: str, principal: Principal,
                        now: datetime | None = None) -> RulebookSwitch:
    """Make ``rulebook_id`` the active rulebook for every screen (needs permission ``set_rulebook``)."""
    principal.require("set_rulebook")
    rulebooks = load_rulebooks(settings)
    if rulebook_id not in rulebooks:
        raise UnknownRulebook(f"unknown rulebook {rulebook_id!r} (configured: {sorted(rulebooks)})")
    new = rulebooks[rulebook_id]
    current = current_rulebook(store, settings)
    as_of = qi.latest_indicator_day(store)
    if (current.id, current.version) == (new.id, new.version):
        return RulebookSwitch(new.id, new.version, current.id, current.version, None, 0, as_of)
    assessed = assess_areas(new, qi.indicator_table(store, as_of)) if as_of else {}
    levels = [AreaLevel(area, a.rulebook_id, a.rulebook_version, a.level, a.level_rank, a.colour, a.basis)
              for area, a in assessed.items()]
    now = now or datetime.now(timezone.utc)

    def write(con) -> tuple[int, int]:
        choice_id = qw.insert_rulebook_choice(con, now, principal.user, new.id, new.version,
                                              (current.id, current.version))
        changes = qw.store_levels(con, as_of, levels, now, choice_id=choice_id) if as_of else 0
        # A rule change is an audited action: same transaction, so the log cannot miss it.
        append_audit_in(con, principal.user, "rule_changed", f"rulebook:{new.id}",
                        {"role": principal.role, "from": f"{current.id}@{current.version}",
                         "to": f"{new.id}@{new.version}", "level_changes": changes}, now)
        return choice_id, changes

    choice_id, changes = submit_audited(store, write).result()
    log.info("rulebook switched from %s v%s to %s v%s by %s (%d level changes)", current.id, current.version,
             new.id, new.version, principal.user, changes)
    return RulebookSwitch(new.id, new.version, current.id, current.version, choice_id, changes, as_of)
