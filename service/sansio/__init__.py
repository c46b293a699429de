"""The pure HTTP core: turns (method, request conditions, file facts) into a response plan.

Rule for every module in this package: no Flask, no Werkzeug, no I/O (no ``open``, no
``os.stat``, no sockets, no clock reads). Inputs are ``str``/``int`` values, outputs are
frozen data. That keeps the RFC 9110 decisions testable as plain tables.
"""

from __future__ import annotations

from service.sansio.plan import Conditions, Plan, Policy, Representation, plan_response
from service.sansio.ranges import Span

__all__ = ["Conditions", "Plan", "Policy", "Representation", "Span", "plan_response"]
