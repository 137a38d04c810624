"""How the report's tables write a number: cells shared by the report and its Zhang & Wallace
section, kept apart so that neither module imports the other."""

from __future__ import annotations


def duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} minutes"


def p_cell(value: float) -> str:
    return "—" if value != value else f"{value:.3g}"


def interval_and_verdict(c: dict, above: str, below: str, digits: int = 2) -> tuple[str, str]:
    """A paired comparison's 95% interval cell and whether it holds (the interval excludes 0)."""
    if c["n"] < 2:
        return "—", "no"
    interval = f"{100 * c['ci_low']:+.{digits}f} to {100 * c['ci_high']:+.{digits}f}"
    if c["ci_low"] > 0 or c["ci_high"] < 0:
        return interval, f"yes: {above if c['mean_difference'] > 0 else below}"
    return interval, "no"
