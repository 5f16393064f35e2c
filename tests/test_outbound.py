"""A judge reaches only allow-listed places, on every hop and at every resolved address.

Checking the configured URL alone let a judge be bounced elsewhere: an allowed host answered
307 to a refused one, or an allowed name resolved to a private address. These tests aim
alice's judge at real listeners started here (tests/support/judge_server.py) and count the TCP
connections each accepted: a refused listener must see none at all. Name resolution is faked
at its outside edge, `socket.getaddrinfo`, so `judge.example` can point anywhere.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.contrib.auth.models import User

from rewards.judge.scoring import validate_judge_config
from rewards.models import RewardVersion
from rewards.scoring import score_batch
from rewards.services import create_reward
from rewards.types import RewardResult, Sample
from rftconsole.security.outbound import AllowList, OutboundRefused, checked_addresses
from tests.support.judge_server import JudgeServer, serve

INSTRUCTIONS = "Rate the reply: {{response}}\nReply with: Score: <number>"
REDIRECTED = "the judge endpoint answered a redirect to 127.0.0.2; redirects are not followed"


def judge_reward(owner: User, url: str, **config: Any) -> RewardVersion:
    settings = {
        "instructions": INSTRUCTIONS,
        "judge_type": "endpoint",
        "base_url": url,
        "model": "judge-model",
        "backoff_seconds": 0.01,
        **config,
    }
    return create_reward(owner, "judge", "judge", "", config=settings, pass_threshold=0.7)


def judge_once(owner: User, url: str, **config: Any) -> RewardResult:
    (result,) = score_batch(judge_reward(owner, url, **config), [Sample("0", "Paris", {})])
    return result


def attempts(result: RewardResult) -> float:
    return {c["name"]: c["value"] for c in result.components}["judge_attempts"]


@pytest.fixture
def front() -> Iterator[JudgeServer]:
    """The judge alice configured, on an allowed address."""
    with serve("127.0.0.1") as server:
        yield server


@pytest.fixture
def inside() -> Iterator[JudgeServer]:
    """Something on the private network (127.0.0.2 stands in) that answers like a judge."""
    with serve("127.0.0.2") as server:
        yield server


Answers = dict[str, list[list[str]]]


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Answers, list[str]]]:
    """Fake DNS: `answers[name]` is each lookup's addresses in turn (the last one repeats).

    Returns the answers to fill in and the list of names looked up; other names resolve as usual.
    """
    answers: Answers = {}
    asked: list[str] = []
    real: Callable[..., Any] = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in answers:
            return real(host, port, *args, **kwargs)
        asked.append(host)
        queue = answers[host]
        addresses = queue.pop(0) if len(queue) > 1 else queue[0]
        return [_entry(address, int(port)) for address in addresses]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield answers, asked


def _entry(address: str, port: int) -> tuple[Any, ...]:
    if ipaddress.ip_address(address).version == 6:
        return (socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, port, 0, 0))
    return (socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))


# Redirects: never followed, so the place they point to is never contacted.


def test_a_redirect_to_a_refused_host_is_an_error_and_that_host_is_never_contacted(
    alice: User, settings: Any, front: JudgeServer, inside: JudgeServer
) -> None:
    settings.RFT_JUDGE_ALLOWED_HOSTS = ["127.0.0.1"]
    front.redirect_to = f"{inside.url}/chat/completions"
    result = judge_once(alice, front.url, max_retries=3)
    assert result.error == REDIRECTED and result.score == 0.0
    assert attempts(result) == 1 and len(front.requests) == 0 and front.connections == 1
    assert inside.connections == 0


def test_a_redirect_is_an_error_even_when_its_target_is_allowed(
    alice: User, settings: Any, front: JudgeServer, inside: JudgeServer
) -> None:
    settings.RFT_JUDGE_ALLOWED_HOSTS = ["127.0.0.1", "127.0.0.2"]
    front.redirect_to = f"{inside.url}/chat/completions"
    assert judge_once(alice, front.url).error == REDIRECTED
    assert inside.connections == 0


def test_an_allowed_host_is_judged_when_aimed_at_directly(
    alice: User, settings: Any, inside: JudgeServer
) -> None:
    settings.RFT_JUDGE_ALLOWED_HOSTS = ["127.0.0.1", "127.0.0.2"]
    result = judge_once(alice, inside.url)
    assert result.error is None and result.score == pytest.approx(0.7)
    assert len(inside.requests) == 1


def test_proxy_settings_in_the_environment_do_not_carry_judge_calls(
    alice: User, settings: Any, monkeypatch: pytest.MonkeyPatch, front: JudgeServer
) -> None:
    # A proxy resolves and connects on our behalf, where no allow-list is checked.
    with serve("127.0.0.2") as proxy:
        for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY"):
            monkeypatch.setenv(name, f"http://127.0.0.2:{proxy.port}")
        for name in ("NO_PROXY", "no_proxy"):
            monkeypatch.delenv(name, raising=False)
        result = judge_once(alice, front.url)
    assert result.error is None and len(front.requests) == 1
    assert proxy.connections == 0


# DNS: the resolved address is checked, and the connection goes to the address checked.


@pytest.mark.parametrize("allowed", [["judge.example", "127.0.0.1"], ["*"]])
def test_an_allowed_name_resolving_to_a_refused_address_is_refused(
    alice: User, settings: Any, dns: tuple[Answers, list[str]], inside: JudgeServer, allowed: list
) -> None:
    answers, _ = dns
    answers["judge.example"] = [["127.0.0.2"]]
    settings.RFT_JUDGE_ALLOWED_HOSTS = allowed
    result = judge_once(alice, f"http://judge.example:{inside.port}/v1", max_retries=3)
    assert result.error == (
        "the judge may not connect: judge.example resolves to 127.0.0.2, which is not a "
        "public address and not listed in RFT_JUDGE_ALLOWED_HOSTS"
    )
    assert attempts(result) == 1  # a refusal is final: no retries
    assert inside.connections == 0


def test_an_allowed_name_resolving_to_a_listed_address_is_judged(
    alice: User, settings: Any, dns: tuple[Answers, list[str]], inside: JudgeServer
) -> None:
    answers, _ = dns
    answers["judge.example"] = [["127.0.0.2"]]
    settings.RFT_JUDGE_ALLOWED_HOSTS = ["judge.example", "127.0.0.2"]
    result = judge_once(alice, f"http://judge.example:{inside.port}/v1")
    assert result.error is None and result.score == pytest.approx(0.7)
    assert inside.requests[0]["headers"]["host"] == f"judge.example:{inside.port}"


def test_the_connection_goes_to_the_address_that_was_checked(
    alice: User, settings: Any, dns: tuple[Answers, list[str]]
) -> None:
    # DNS rebinding: the first answer passes the check, a second lookup would say otherwise.
    answers, asked = dns
    with serve("127.0.0.1") as checked, serve("127.0.0.2", port=checked.port) as rebound:
        answers["judge.example"] = [["127.0.0.1"], ["127.0.0.2"]]
        settings.RFT_JUDGE_ALLOWED_HOSTS = ["judge.example", "127.0.0.1"]
        result = judge_once(alice, f"http://judge.example:{checked.port}/v1")
    assert result.error is None and len(checked.requests) == 1
    assert rebound.connections == 0
    assert asked == ["judge.example"]  # resolved once, for the one connection


def test_a_name_with_one_refused_address_among_good_ones_is_refused(
    dns: tuple[Answers, list[str]],
) -> None:
    answers, _ = dns
    answers["judge.example"] = [["127.0.0.1", "169.254.169.254"]]
    allow = AllowList.from_entries(["judge.example", "127.0.0.1"], "RFT_JUDGE_ALLOWED_HOSTS")
    with pytest.raises(OutboundRefused, match="resolves to 169.254.169.254"):
        checked_addresses(allow, "judge.example", 80)


def test_the_default_list_still_reaches_localhost(alice: User, front: JudgeServer) -> None:
    result = judge_once(alice, f"http://localhost:{front.port}/v1")
    assert result.error is None and len(front.requests) == 1


# The address rule, unit by unit.

REFUSED_EVEN_WITH_STAR = [
    "169.254.169.254",  # cloud metadata (link-local)
    "127.0.0.2",
    "::1",
    "::ffff:127.0.0.2",  # IPv4-mapped loopback
    "::ffff:169.254.169.254",
    "2002:7f00:2::",  # 6to4 of 127.0.0.2
    "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
    "10.0.0.5",
    "172.16.0.1",
    "192.168.1.1",
    "100.64.0.1",  # carrier-grade NAT
    "fc00::1",  # unique-local
    "fe80::1",  # link-local
    "224.0.1.1",  # multicast
    "ff02::1",
    "0.0.0.0",  # noqa: S104 - an address to refuse, nothing binds it
    "::",
    "240.0.0.1",  # reserved
]


@pytest.mark.parametrize("address", REFUSED_EVEN_WITH_STAR)
def test_non_public_addresses_are_refused_unless_listed(address: str) -> None:
    ip = ipaddress.ip_address(address)
    for entries in (["*"], ["judge.example"]):
        allow = AllowList.from_entries(entries, "S")
        assert not allow.address_allowed("judge.example", ip)
    listed = AllowList.from_entries(["judge.example", address], "S")
    assert listed.address_allowed("judge.example", ip)


@pytest.mark.parametrize(
    ("address", "entry"),
    [
        ("169.254.169.254", "169.254.0.0/16"),
        ("::ffff:127.0.0.2", "127.0.0.0/8"),
        ("10.1.2.3", "10.0.0.0/8"),
        ("fd12::7", "fd00::/8"),
    ],
)
def test_a_cidr_entry_allows_the_addresses_inside_it(address: str, entry: str) -> None:
    allow = AllowList.from_entries([entry], "S")
    assert allow.address_allowed("any.name", ipaddress.ip_address(address))
    assert allow.name_allowed(address)


def test_a_public_address_needs_its_name_listed_or_a_star() -> None:
    public = ipaddress.ip_address("8.8.8.8")
    named = AllowList.from_entries(["api.openai.com"], "S")
    assert named.address_allowed("API.OpenAI.com.", public)
    assert not named.address_allowed("other.example", public)
    assert AllowList.from_entries(["*"], "S").address_allowed("other.example", public)
    assert AllowList.from_entries(["*"], "S").address_allowed("x", ipaddress.ip_address("2606::1"))


def test_the_default_list_allows_loopback_by_name_and_address() -> None:
    allow = AllowList.from_entries(["127.0.0.1", "localhost", "::1"], "S")
    for host in ("localhost", "127.0.0.1", "[::1]", "0:0:0:0:0:0:0:1"):
        assert allow.name_allowed(host)
    for address in ("127.0.0.1", "::1", "::ffff:127.0.0.1"):
        assert allow.address_allowed("localhost", ipaddress.ip_address(address))
    assert not allow.address_allowed("localhost", ipaddress.ip_address("127.0.0.2"))
    assert not allow.name_allowed("10.0.0.5")


def test_saving_a_judge_accepts_cidr_entries_and_checks_names(settings: Any) -> None:
    settings.RFT_JUDGE_ALLOWED_HOSTS = ["10.0.0.0/8", "judge.example"]
    config = {"instructions": INSTRUCTIONS, "judge_type": "endpoint", "model": "m"}
    for url in ("http://10.1.2.3:8000/v1", "https://judge.example/v1"):
        assert validate_judge_config({**config, "base_url": url}) == []
    problems = validate_judge_config({**config, "base_url": "http://192.168.0.9/v1"})
    assert problems == [
        "The judge may not call 192.168.0.9: ask an administrator to add it to "
        "RFT_JUDGE_ALLOWED_HOSTS."
    ]
