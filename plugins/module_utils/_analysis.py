# Private to this collection: not a public API, may change without notice.
"""Release analysis: is the new release worse for its users than the one it replaces?

Pure Python, no I/O: counters read from the balancers go in, a verdict comes out. The error test is a
one-sided exact binomial test of the canary's failed responses against a threshold derived from the
baseline (the servers still on the release the rollout started from), so a verdict only comes once the
evidence says so, whatever the traffic. Latency is a ratio and margin threshold on the balancer's own
response times.
"""

from __future__ import annotations

import dataclasses
import math
import typing as t

from ansible_collections.fleet.rollout.plugins.module_utils._errors import InvalidInputError
from ansible_collections.fleet.rollout.plugins.module_utils._verdict import FAIL, INCONCLUSIVE, PASS

# HAProxy keeps a server's response time (rtime) as a moving average over its last 512 responses
# (TIME_STATS_SAMPLES in HAProxy's source); fewer responses than that and it averages all of them.
HAPROXY_TIME_SAMPLES = 512

# The confidence of the baseline's upper bound (see judge).
BASELINE_CONFIDENCE = 0.9


@dataclasses.dataclass(frozen=True)
class ServerCounters:
    """The counters of one server on one balancer that the analysis needs, from one ``show stat`` row."""

    responses: int  # answers the server sent (every status class) plus the responses that broke off
    errors: int  # 5xx answers, broken-off responses (eresp) and failed connections (econ)
    requests: int  # req_tot: what HAProxy's response-time average counts
    rtime_ms: int  # HAProxy's moving average of the response time

    @classmethod
    def from_row(cls, row: t.Mapping[str, t.Any]) -> ServerCounters:
        def number(name: str) -> int:
            value = str(row.get(name) or "")
            return int(value) if value.isdigit() else 0

        answered = sum(number(f"hrsp_{kind}") for kind in ("1xx", "2xx", "3xx", "4xx", "5xx", "other"))
        broken = number("eresp") + number("econ")
        return cls(
            responses=answered + broken,
            errors=number("hrsp_5xx") + broken,
            requests=number("req_tot") or answered,
            rtime_ms=number("rtime"),
        )

    @classmethod
    def from_dict(cls, raw: t.Any) -> ServerCounters:
        """From an earlier result's entry (``since``); anything malformed is bad input."""
        if not isinstance(raw, dict):
            raise InvalidInputError(f"counters must be a dict, got {raw!r}")
        values = {}
        for field in dataclasses.fields(cls):
            value = raw.get(field.name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InvalidInputError(
                    f"counters {field.name} must be a whole number of 0 or more, got {value!r}"
                )
            values[field.name] = value
        return cls(**values)

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Traffic:
    """What a group of servers answered over an interval."""

    responses: int = 0
    errors: int = 0
    # sum of (estimated mean response time x responses), so groups add up; None: nothing to estimate
    latency_weight: float = 0.0
    latency_responses: int = 0

    @property
    def error_rate(self) -> float:
        return self.errors / self.responses if self.responses else 0.0

    @property
    def latency_ms(self) -> float | None:
        return self.latency_weight / self.latency_responses if self.latency_responses else None

    def __add__(self, other: Traffic) -> Traffic:
        return Traffic(
            self.responses + other.responses,
            self.errors + other.errors,
            self.latency_weight + other.latency_weight,
            self.latency_responses + other.latency_responses,
        )

    def __sub__(self, other: Traffic) -> Traffic:
        """What is left of a sum once ``other``, one of its parts, is taken out."""
        return Traffic(
            self.responses - other.responses,
            self.errors - other.errors,
            self.latency_weight - other.latency_weight,
            self.latency_responses - other.latency_responses,
        )

    def as_dict(self) -> dict[str, t.Any]:
        latency = self.latency_ms
        return {
            "responses": self.responses,
            "errors": self.errors,
            "error_rate": round(self.error_rate, 6),
            "latency_ms": None if latency is None else round(latency, 1),
        }


def interval_traffic(before: ServerCounters | None, now: ServerCounters) -> Traffic:
    """What one server answered between two reads. A counter that went down means the balancer
    restarted (or its counters were cleared) in between: what it counted since then is the interval's."""
    if before is None or now.responses < before.responses or now.requests < before.requests:
        before = ServerCounters(0, 0, 0, 0)
    responses = now.responses - before.responses
    errors = max(0, min(responses, now.errors - before.errors))
    new_requests = now.requests - before.requests
    latency = mean_of_new_samples(before.rtime_ms, before.requests, now.rtime_ms, now.requests)
    if latency is None or new_requests <= 0:
        return Traffic(responses, errors)
    return Traffic(responses, errors, latency * new_requests, new_requests)


def mean_of_new_samples(avg_before: int, count_before: int, avg_now: int, count_now: int) -> float | None:
    """The mean response time of the samples HAProxy added between two reads of its average.

    HAProxy 2.6 adds each of a server's first N = 512 samples v to a plain sum S, and each later one as
    S - S/N + v, and shows S / min(count, N). So with p plain additions then d decaying ones (a = 1 - 1/N),
    S_now = S_before * a**d + mean * (p * a**d + N * (1 - a**d)): solved for mean (exact for a constant
    mean, a weighted mean of the new samples otherwise).
    """
    added = count_now - count_before
    if added <= 0:
        return None
    window = HAPROXY_TIME_SAMPLES
    plain = max(0, min(count_now, window) - count_before)
    decaying = added - plain
    decay = (1.0 - 1.0 / window) ** decaying
    sum_before = avg_before * min(count_before, window)
    sum_now = avg_now * min(count_now, window)
    return max(0.0, (sum_now - sum_before * decay) / (plain * decay + window * (1.0 - decay)))


def binomial_upper_tail(successes: int, trials: int, probability: float) -> float:
    """P(X >= successes) for X ~ Binomial(trials, probability), exact, summed in log space from
    ``successes`` upward until the terms no longer matter."""
    if successes <= 0:
        return 1.0
    if successes > trials:
        return 0.0
    if probability <= 0.0:
        return 0.0
    if probability >= 1.0:
        return 1.0
    log_p, log_q = math.log(probability), math.log1p(-probability)
    log_n = math.lgamma(trials + 1)

    def log_term(k: int) -> float:
        return log_n - math.lgamma(k + 1) - math.lgamma(trials - k + 1) + k * log_p + (trials - k) * log_q

    mode = int((trials + 1) * probability)
    if successes <= mode:
        # the bulk of the mass is at or above: 1 - the lower tail, which is the short sum here
        lower = sum(math.exp(log_term(k)) for k in range(successes))
        return max(0.0, min(1.0, 1.0 - lower))
    total = 0.0
    for k in range(successes, trials + 1):
        term = math.exp(log_term(k))
        total += term
        if term < total * 1e-15:
            break  # the terms fall geometrically past the mode
    return min(1.0, total)


def binomial_upper_bound(successes: int, trials: int, confidence: float) -> float:
    """One-sided Clopper-Pearson upper bound of a share seen as successes/trials: the largest p under
    which seeing this few successes still has probability at least 1 - confidence."""
    if trials <= 0:
        return 1.0
    if successes >= trials:
        return 1.0
    alpha = 1.0 - confidence
    if successes <= 0:
        # P(0 of n | p) = (1 - p)^n, solved for alpha: the usual case (no failure), without the search
        return float(1.0 - alpha ** (1.0 / trials))
    low, high = successes / trials, 1.0
    for _step in range(60):  # bisection: P(X <= successes | p) falls as p grows
        middle = (low + high) / 2
        at_most = 1.0 - binomial_upper_tail(successes + 1, trials, middle)
        if at_most > alpha:
            low = middle
        else:
            high = middle
    return high


@dataclasses.dataclass(frozen=True)
class AnalysisPolicy:
    """When the canary counts as worse than the baseline; the module's options, validated."""

    max_error_ratio: float = 2.0
    error_margin: float = 1.0  # percentage points
    confidence: float = 0.999
    min_responses: int = 200
    max_latency_ratio: float = 1.5
    latency_margin_ms: float = 50.0
    latency_min_responses: int = 30

    def validate(self) -> AnalysisPolicy:
        def refuse(name: str, value: object, expected: str) -> t.NoReturn:
            raise InvalidInputError(f"{name} must be {expected}, got {value!r}", **{name: value})

        if not (math.isfinite(self.max_error_ratio) and self.max_error_ratio >= 1.0):
            refuse("max_error_ratio", self.max_error_ratio, "a ratio of 1 or more")
        if not (math.isfinite(self.error_margin) and 0.0 <= self.error_margin <= 100.0):
            refuse("error_margin", self.error_margin, "a percentage from 0 to 100")
        if not (math.isfinite(self.confidence) and 0.5 <= self.confidence < 1.0):
            refuse("confidence", self.confidence, "a probability from 0.5 up to (not including) 1")
        if self.min_responses < 1:
            refuse("min_responses", self.min_responses, "a whole number of 1 or more")
        if not (math.isfinite(self.max_latency_ratio) and self.max_latency_ratio >= 1.0):
            refuse("max_latency_ratio", self.max_latency_ratio, "a ratio of 1 or more")
        if not (math.isfinite(self.latency_margin_ms) and self.latency_margin_ms >= 0.0):
            refuse("latency_margin_ms", self.latency_margin_ms, "a number of milliseconds (0 or more)")
        if self.latency_min_responses < 1:
            refuse("latency_min_responses", self.latency_min_responses, "a whole number of 1 or more")
        return self


@dataclasses.dataclass(frozen=True)
class Verdict:
    """The outcome of one look at the evidence."""

    verdict: str  # pass, fail or inconclusive
    reason: str
    canary: Traffic
    baseline: Traffic
    error_threshold: float  # the error share the canary is tested against
    p_value: float
    latency_threshold_ms: float | None

    def as_dict(self) -> dict[str, t.Any]:
        return {
            "verdict": self.verdict,
            "reason": self.reason,
            "canary": self.canary.as_dict(),
            "baseline": self.baseline.as_dict(),
            "error_threshold": round(self.error_threshold, 6),
            "p_value": self.p_value,
            "latency_threshold_ms": None
            if self.latency_threshold_ms is None
            else round(self.latency_threshold_ms, 1),
        }


def describe(label: str, traffic: Traffic) -> str:
    return f"{label}: {traffic.errors} of {traffic.responses} responses failed ({traffic.error_rate:.1%})"


def format_p(p_value: float) -> str:
    return "p < 0.001" if p_value < 0.001 else f"p = {p_value:.3f}"


def judge(canary: Traffic, baseline: Traffic, policy: AnalysisPolicy, canary_label: str) -> Verdict:
    """Worse (fail) as soon as the evidence is significant; pass once min_responses were seen without
    that; inconclusive while there are fewer responses than that."""
    alpha = 1.0 - policy.confidence
    # The baseline's share at its upper bound, so that a thin baseline (0 failures of 40) does not make
    # an honest canary look worse; at 90%, so that it does not either hide a bad canary for long.
    baseline_share = 0.0
    if baseline.responses:
        baseline_share = binomial_upper_bound(baseline.errors, baseline.responses, BASELINE_CONFIDENCE)
    threshold = min(
        1.0, max(baseline_share * policy.max_error_ratio, baseline_share + policy.error_margin / 100)
    )
    p_value = binomial_upper_tail(canary.errors, canary.responses, threshold)
    latency_threshold = None
    compared = f"{describe(canary_label, canary)} vs {describe('baseline', baseline)}"
    if p_value < alpha:
        return Verdict(
            FAIL, f"{compared}: worse, {format_p(p_value)}", canary, baseline, threshold, p_value, None
        )
    canary_latency, baseline_latency = canary.latency_ms, baseline.latency_ms
    if (
        canary_latency is not None
        and baseline_latency is not None
        and canary.latency_responses >= policy.latency_min_responses
    ):
        latency_threshold = max(
            baseline_latency * policy.max_latency_ratio, baseline_latency + policy.latency_margin_ms
        )
        if canary_latency > latency_threshold:
            reason = (
                f"{canary_label}: response time {canary_latency:.0f} ms vs baseline "
                f"{baseline_latency:.0f} ms (more than {latency_threshold:.0f} ms, over "
                f"{canary.latency_responses} responses): slower"
            )
            return Verdict(FAIL, reason, canary, baseline, threshold, p_value, latency_threshold)
    if canary.responses >= policy.min_responses:
        return Verdict(
            PASS,
            f"{compared}: not worse ({format_p(p_value)})",
            canary,
            baseline,
            threshold,
            p_value,
            latency_threshold,
        )
    reason = f"{compared}: too few responses to judge (at least {policy.min_responses} needed)"
    return Verdict(INCONCLUSIVE, reason, canary, baseline, threshold, p_value, latency_threshold)
