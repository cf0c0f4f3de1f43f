"""Role rotation: who takes which role in the next session, fairly and explainably.

A session has roles in priority order (by default case-giver, moderator, note-taker,
timekeeper; everyone else consults). `assign_roles` picks the next session's holders from the
present members, `preview` simulates several sessions ahead and `turns` exposes the counts
that drive the choice, so the `rotation` and `schedule` commands can show their working.

Effective counts
----------------
For every member and role there is an *effective count*: the number of times the member held
the role, plus a starting offset given when they join. It is rebuilt by replaying `history`
(chronological); each past session is processed in two steps.

1. Join. The session's members who were not members of the previous session (at the first
   session: all of them) join. For every role the *baseline* is the lowest count among the
   continuing members who are present (if none is present: among all continuing members; if
   there are none: 0). A first-time member starts at the baseline; a former member who comes
   back keeps their old count, raised to the baseline if it is lower.
2. Count. Every assignment as it actually happened (overrides and swaps included) adds 1 to
   that member's count for that role. Roles that are not in `roles` are ignored, and whoever
   held a role counts as a present member of that session whatever `members`/`present` say.

The session being planned is joined the same way (members = `queue`, present = `present`)
before it is assigned. `turns`, which knows no attendance, joins newcomers as if everyone
were present.

Choosing the assignment
-----------------------
Let P be the present members (p of them, in queue order), k the number of roles, low(r) the
lowest count for r in P, excess(m, r) = count(m, r) - low(r) and total(m) the sum of m's
counts over `roles`.

* p >= k: among all assignments of the k roles to *distinct* members of P, take the one that
  is lexicographically smallest in
    1. the sum of excess(holder of r, r) over the roles;
    2. the holders' excesses read role by role in priority order -- if someone has to take
       a role more often than others, let it be the least important role, so a case-giver
       turn owed to someone is not handed to a person who already had it;
    3. the sum of total(holder) -- prefer whoever is furthest behind overall, so nobody is
       left owing several roles at once;
    4. the queue positions of the holders, read role by role in priority order -- among
       equals the case-giver is the earliest in the queue, then the moderator, and so on.
  Criterion 4 differs for any two different assignments, so the optimum is unique. It is
  found exactly (not greedily) by dynamic programming over the subsets of roles, adding the
  members one at a time: O(p * 2^k * k) steps (512 for 8 present and 4 roles; tens of
  microseconds). The criteria are packed into one integer with mixed radices so that integer
  order is the lexicographic order. Replaying the history costs O(sessions * members * roles).
  No tie-break by recency is needed: the queue order is already total.
* 0 < p < k: the first p roles go to all p present members, chosen as above. Each remaining
  role, in priority order, goes to the present member holding the fewest roles so far in
  this session, then with the lowest excess for it, then the lowest total, then earliest in
  the queue.
* p = 0: every role's member is None.

Guarantees
----------
G1 No double roles while p >= k.
G2 Nobody is passed over except to avoid a double role: if r goes to m, every present member
   with a strictly lower count for r than m holds another role in the same session. (Else
   giving them r instead would lower criterion 1.) While p < k everyone present holds a role.
G3 Away members keep their place: counts change only by holding a role or by (re)joining,
   so sessions a member misses leave their counts untouched, and when they are back a count
   below everyone else's gets them that role or another one in that session (G2).
G4 Strict rounds with a stable cohort: if the same n >= k members are present at every
   session from the first on, then for every role nobody holds it a (j+1)-th time before
   every member has held it j times. Proof: it suffices that criterion 1 is 0 at every
   session. Then all roles move through rounds of n sessions in step; inside a round let s
   be the sessions left and d(m) the roles m still owes. The round can be completed iff
   d(m) <= s for all m (Koenig's edge-colouring theorem on the bipartite member-owes-role
   graph, where each role has degree s), so every member with d(m) = s must take a role now.
   Among zero-excess assignments criterion 3 maximises the sum of d over the chosen members
   (total(m) = constant - d(m)). The sets of members matchable to distinct roles they owe
   form a transversal matroid, all its maximum-weight bases have the same multiset of
   weights, and the greedy one contains every member with d(m) = s; so every optimum does,
   d(m) <= s holds again after the session and criterion 1 stays 0.
G5 The case-giver (first role) is never also the moderator (second role) while at least two
   members are present: the first min(p, k) roles always go to distinct members.
G6 Deterministic: the result depends only on the arguments' values and orders (`queue`,
   `roles`, `history`), never on set iteration order; ties are broken by queue order.
G7 Newcomers join the back of the current round: for each role their count equals the
   lowest count among the members present when they join, so they are owed at most the same
   turns as the members who have not had the role yet this round, never turns from earlier
   rounds, and they are last in the queue for criterion 4.

Without a stable cohort (absences, joins, leaves, overrides) strict rounds can be impossible:
with five members and four roles, a sixth member joining after three sessions is owed all
four roles in a round that has three sessions left, so one role must go to somebody a second
time before the newcomer has had it. Criterion 2 makes that the least important role; G2 is
the guarantee that always holds.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

DEFAULT_ROLES: tuple[str, ...] = ("case-giver", "moderator", "note-taker", "timekeeper")

_NOBODY_PRESENT = "nobody is present"


@dataclass(frozen=True, kw_only=True, slots=True)
class PastSession:
    """One held session as it actually happened (overrides and swaps included)."""

    assignments: Mapping[str, str]  # role -> member id
    members: frozenset[str]  # who was a member of the cohort at that session
    present: frozenset[str]  # who was not away


@dataclass(frozen=True, kw_only=True, slots=True)
class RoleAssignment:
    role: str
    member: str | None  # None only if nobody is present
    reason: str  # plain-English explanation of the choice


@dataclass(frozen=True, kw_only=True, slots=True)
class Assignment:
    roles: tuple[RoleAssignment, ...]  # in role priority order

    def as_dict(self) -> dict[str, str]:
        """Role -> member, leaving out roles nobody could take."""
        return {ra.role: ra.member for ra in self.roles if ra.member is not None}

    def roles_of(self, member: str) -> tuple[str, ...]:
        """The roles `member` holds in this session, in priority order."""
        return tuple(ra.role for ra in self.roles if ra.member == member)


def assign_roles(
    *,
    roles: Sequence[str],
    queue: Sequence[str],
    present: Collection[str],
    history: Sequence[PastSession],
) -> Assignment:
    """Assign `roles` for the next session; see the module docstring for the rules."""
    role_list, queue_list = _check_roles(roles), _check_queue(queue)
    present_set = _check_present(present, queue_list)
    ledger = _Ledger(role_list)
    for past in history:
        ledger.replay(past)
    return ledger.plan(queue_list, present_set)


def preview(
    *,
    roles: Sequence[str],
    queue: Sequence[str],
    history: Sequence[PastSession],
    presence: Sequence[Collection[str]],
) -> list[Assignment]:
    """The next len(presence) sessions, each planned as if the ones before it happened as
    planned (with `presence[i]` present at the i-th), so the result equals calling
    `assign_roles` repeatedly and feeding every assignment back into the history."""
    role_list, queue_list = _check_roles(roles), _check_queue(queue)
    present_sets = [_check_present(present, queue_list) for present in presence]
    ledger = _Ledger(role_list)
    for past in history:
        ledger.replay(past)
    # The ledger is advanced in place instead of replaying a growing history: planning a
    # session leaves it exactly where replaying that session as a PastSession would.
    return [ledger.plan(queue_list, present_set) for present_set in present_sets]


def turns(
    *,
    roles: Sequence[str],
    queue: Sequence[str],
    history: Sequence[PastSession],
) -> dict[str, dict[str, int]]:
    """Member -> role -> effective count, for the members of `queue` in queue order.

    Members not yet in the history are shown with the count they would start from if
    everyone were present at their first session."""
    role_list, queue_list = _check_roles(roles), _check_queue(queue)
    ledger = _Ledger(role_list)
    for past in history:
        ledger.replay(past)
    ledger.join(queue_list, frozenset(queue_list))
    return {m: {r: ledger.counts[m][r] for r in role_list} for m in queue_list}


# --- input checks ---------------------------------------------------------------------------


def _check_roles(roles: Sequence[str]) -> tuple[str, ...]:
    role_list = tuple(roles)
    if len(set(role_list)) != len(role_list):
        raise ValueError(f"roles must be distinct, got {list(role_list)!r}")
    return role_list


def _check_queue(queue: Sequence[str]) -> tuple[str, ...]:
    queue_list = tuple(queue)
    if len(set(queue_list)) != len(queue_list):
        raise ValueError("queue lists a member more than once")
    return queue_list


def _check_present(present: Collection[str], queue: tuple[str, ...]) -> frozenset[str]:
    present_set = frozenset(present)
    strangers = present_set.difference(queue)
    if strangers:
        raise ValueError(f"present members not in the queue: {sorted(strangers)!r}")
    return present_set


# --- effective counts -----------------------------------------------------------------------


class _Ledger:
    """Effective counts, advanced one session at a time. Private and mutable: it only ever
    lives inside one call of the public functions."""

    __slots__ = ("counts", "last_members", "roles")

    def __init__(self, roles: tuple[str, ...]) -> None:
        self.roles = roles
        # Everyone ever seen, including members who left: a member who comes back resumes
        # from their old counts (raised to the baseline) instead of being owed everything.
        self.counts: dict[str, dict[str, int]] = {}
        self.last_members: frozenset[str] = frozenset()

    def join(self, members: Iterable[str], present: Collection[str]) -> None:
        """Admit the members who were not members of the previous session."""
        members = frozenset(members)
        continuing = [m for m in members if m in self.last_members]
        # The present continuing members define "the current round": away members are
        # behind on purpose (G3) and must not drag a newcomer's start back with them.
        reference = [m for m in continuing if m in present] or continuing
        baseline = {r: min((self.counts[m][r] for m in reference), default=0) for r in self.roles}
        for m in members - self.last_members:
            old = self.counts.get(m)
            if old is None:
                self.counts[m] = dict(baseline)
            else:
                self.counts[m] = {r: max(old[r], baseline[r]) for r in self.roles}
        # min/max above are order-independent, so set iteration order cannot leak out (G6).
        self.last_members = members

    def record(self, assignments: Mapping[str, str]) -> None:
        for role, member in assignments.items():
            if role in self.counts[member]:
                self.counts[member][role] += 1

    def replay(self, past: PastSession) -> None:
        # A stored assignment is the truth even if membership/attendance data disagrees
        # (e.g. a facilitator put an "away" member in a role): holders were there.
        holders = frozenset(past.assignments.values())
        self.join(past.members | holders, past.present | holders)
        self.record(past.assignments)

    def plan(self, queue: tuple[str, ...], present: frozenset[str]) -> Assignment:
        """Assign the next session and advance past it, exactly as `replay` would."""
        self.join(queue, present)
        assignment = _choose(self.roles, [m for m in queue if m in present], self.counts)
        self.record(assignment.as_dict())
        return assignment


# --- choosing -------------------------------------------------------------------------------


def _choose(
    roles: tuple[str, ...], present: list[str], counts: Mapping[str, Mapping[str, int]]
) -> Assignment:
    """Assign `roles` among `present` (in queue order) given the effective counts."""
    if not present:
        return Assignment(
            roles=tuple(RoleAssignment(role=r, member=None, reason=_NOBODY_PRESENT) for r in roles)
        )
    p, k = len(present), len(roles)
    low = {r: min(counts[m][r] for m in present) for r in roles}
    total = {m: sum(counts[m].values()) for m in present}
    distinct = roles[: min(p, k)]
    holders = _best_matching(distinct, present, counts, low, total)

    held: dict[str, list[str]] = {m: [] for m in present}
    for role, member in zip(distinct, holders, strict=True):
        held[member].append(role)
    for role in roles[p:]:
        # More roles than people: spread the load first (nobody takes a third role while
        # someone has one), then the usual fairness order. Extra roles start at index p >= 2
        # when two or more are present, so the moderator is never the case-giver here (G5).
        member = min(
            (len(held[m]), counts[m][role], total[m], index, m) for index, m in enumerate(present)
        )[-1]
        held[member].append(role)

    holder_of = {r: m for m, rs in held.items() for r in rs}
    result: list[RoleAssignment] = []
    for index, role in enumerate(roles):
        member = holder_of[role]
        if p == 1:
            # Counts and queue explain nothing when there is no one to compare with.
            reason = "the only member present" + (f", so they take all {k} roles" if k > 1 else "")
        elif index < p:
            reason = _distinct_reason(role, member, present, counts, low, total, held)
            if p < k:
                reason += f"; everyone present takes a role (only {p} present for {k} roles)"
        else:
            reason = _extra_reason(role, member, p, k, counts)
        result.append(RoleAssignment(role=role, member=member, reason=reason))
    return Assignment(roles=tuple(result))


def _best_matching(
    roles: tuple[str, ...],
    present: list[str],
    counts: Mapping[str, Mapping[str, int]],
    low: Mapping[str, int],
    total: Mapping[str, int],
) -> list[str]:
    """The minimum-cost assignment of `roles` to distinct members of `present` (len(roles) <=
    len(present)); returns the holder of each role, in role order."""
    k, p = len(roles), len(present)
    if k == 0:
        return []
    # Mixed-radix packing of the four criteria into one int, so the DP compares plain ints.
    # From the least significant end: the queue digits (position of role j's holder in base
    # p, most significant for the first role) sum to at most p**k - 1 < queue_span; the sum
    # of k totals is at most k * max(total) < total_span / queue_span; the excesses read as
    # base-`excess_base` digits, role by role, stay below excess_base**k; the plain sum of
    # excesses is the most significant part.
    excess = [[counts[m][r] - low[r] for r in roles] for m in present]
    excess_base = max(max(row) for row in excess) + 1
    queue_span = p**k
    total_span = queue_span * (k * max(total.values()) + 1)
    priority_span = total_span * excess_base**k
    cost = [
        [
            excess[i][j] * (priority_span + excess_base ** (k - 1 - j) * total_span)
            + total[m] * queue_span
            + i * p ** (k - 1 - j)
            for j in range(k)
        ]
        for i, m in enumerate(present)
    ]
    full = (1 << k) - 1
    # best[mask]: cheapest way for the members seen so far to fill exactly the roles in mask.
    best: list[int | None] = [0] + [None] * full
    # took[i][mask]: the role member i took on the best way to `mask` (-1: none).
    took: list[list[int]] = []
    for i in range(p):
        row = cost[i]
        nxt = best.copy()  # member i takes no role
        choice = [-1] * (full + 1)
        for mask in range(full + 1):
            base = best[mask]
            if base is None:
                continue
            for j in range(k):
                bit = 1 << j
                if mask & bit:
                    continue
                candidate = base + row[j]
                target = nxt[mask | bit]
                # Costs of different partial assignments never tie (the queue digits differ),
                # so "<" picks the same optimum whatever the loop order.
                if target is None or candidate < target:
                    nxt[mask | bit] = candidate
                    choice[mask | bit] = j
        best = nxt
        took.append(choice)
    holders: list[str | None] = [None] * k
    mask = full
    for i in range(p - 1, -1, -1):
        j = took[i][mask]
        if j >= 0:
            holders[j] = present[i]
            mask ^= 1 << j
    return [h for h in holders if h is not None]


# --- explanations ---------------------------------------------------------------------------


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _distinct_reason(
    role: str,
    member: str,
    present: list[str],
    counts: Mapping[str, Mapping[str, int]],
    low: Mapping[str, int],
    total: Mapping[str, int],
    held: Mapping[str, list[str]],
) -> str:
    """Why `member` holds `role`, stated only from facts every optimum satisfies: G2, and
    the exchange argument that a free member tied on the count has a larger total, or the
    same total and a later place in the queue (else swapping them in would be cheaper)."""
    count = counts[member][role]
    if count == low[role]:
        parts = [f"fewest turns as {role} ({count}) among present members"]
    else:
        parts = [
            f"{_plural(count, 'turn')} as {role}; everyone present with fewer "
            "already has another role this session"
        ]
    position = present.index(member)
    tied = [m for m in present if m != member and counts[m][role] == count]
    free = [m for m in tied if not held[m]]
    busy_ahead = [m for m in tied if held[m] and present.index(m) < position]
    if free:
        beaten_on_total = any(total[m] > total[member] for m in free)
        beaten_in_queue = any(total[m] == total[member] for m in free)
        overall = f"fewest turns over all roles ({total[member]})"
        if beaten_on_total and beaten_in_queue:
            tiebreak = f"{overall}, then earliest in the queue"
        elif beaten_on_total:
            tiebreak = overall
        else:
            tiebreak = "earliest in the queue"
        if busy_ahead:
            tiebreak += " among those without another role"
        parts.append(tiebreak)
    elif busy_ahead:
        parts.append(f"the others with {count} already have another role this session")
    elif tied:
        parts.append("earliest in the queue")
    return "; ".join(parts)


def _extra_reason(
    role: str, member: str, p: int, k: int, counts: Mapping[str, Mapping[str, int]]
) -> str:
    return (
        f"only {p} present for {k} roles, so this role doubles up: fewest roles so far this "
        f"session, then fewest turns as {role} ({counts[member][role]})"
    )
