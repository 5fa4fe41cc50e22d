"""Policy engine benchmark: decisions per second with 10, 100 and 1,000 rules.

Generates realistic policy files (globs with literal prefixes, some `re:` regexes, some host
rules, a catch-all-depth dotfile rule first), loads them through the real loader, then times
`match` + `decide` over a request mix that hits early rules, late rules and no rule at all.
Run: python bench/policy.py [--seconds 1.0]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

# Run as a script from any folder: import the gateway package of this checkout.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.policy import Principal, decide, load_policies  # noqa: E402

USER = Principal("alice", frozenset({"staff"}), "mfa", mfa_enabled=True)


def rules_yaml(count: int) -> str:
    lines = [
        "rules:",
        "  - {name: dotfiles, match: {paths: ['/**/.env', '/.git/**']}, access: deny}",
    ]
    for i in range(1, count):
        kind = i % 5
        if kind == 0:
            rule = f"{{paths: ['/app{i}/**'], methods: [GET, POST]}}, access: authenticated"
        elif kind == 1:
            rule = f"{{paths: ['/api/v1/res{i}/*', '/api/v1/res{i}']}}, access: authenticated"
        elif kind == 2:
            rule = f"{{paths: ['/svc{i}/items/*/view']}}, access: mfa, roles: [staff]"
        elif kind == 3:
            rule = f"{{paths: ['re:/r{i}/[0-9]+(/edit)?']}}, access: authenticated"
        else:
            rule = f"{{paths: ['/tenant{i}/**'], hosts: ['*.t{i}.example.com']}}, access: public"
        lines.append(f"  - {{name: r{i}, match: {rule}}}")
    return "\n".join(lines) + "\n"


def requests_for(count: int) -> list[tuple[str, str, str]]:
    early = [1, 2, 3, 4, 5]
    late = [count - 5, count - 4, count - 3, count - 2, count - 1]
    out = []
    for i in early + late:
        kind = i % 5
        path = {
            0: f"/app{i}/page/3",
            1: f"/api/v1/res{i}/77",
            2: f"/svc{i}/items/9/view",
            3: f"/r{i}/12345/edit",
            4: f"/tenant{i}/home",
        }[kind]
        out.append(("GET", f"x.t{i}.example.com:443", path))
    out += [  # no rule: default_access
        ("GET", "app.example.com", "/nowhere/at/all"),
        ("POST", "app.example.com", "/app999999/x"),
        ("GET", "app.example.com", "/api/v1/unknown/1"),
        ("GET", "app.example.com", "/"),
    ]
    return out


def measure(count: int, seconds: float) -> tuple[float, float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "policies"
        folder.mkdir()
        (folder / "10-bench.yaml").write_text(rules_yaml(count))
        start = time.perf_counter()
        policy = load_policies(
            ["policies/*.yaml"],
            base_dir=Path(tmp),
            default_access="deny",
            case_insensitive_paths=False,
        )
        load_ms = (time.perf_counter() - start) * 1000
    reqs = requests_for(count)
    random.Random(1).shuffle(reqs)
    assert sum(policy.match(m, h, p, "10.0.0.1") is not None for m, h, p in reqs) == 10
    done = 0
    start = time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        for method, host, path in reqs:
            rule = policy.match(method, host, path, "10.0.0.1")
            decide(policy, rule, USER, mfa_enforce="policy")
        done += len(reqs)
    elapsed = time.perf_counter() - start
    return done / elapsed, elapsed / done * 1e6, load_ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=1.0)
    args = parser.parse_args()
    print(f"{'rules':>6} {'decisions/s':>12} {'µs/decision':>12} {'load ms':>9}")
    for count in (10, 100, 1000):
        rate, micro, load_ms = measure(count, args.seconds)
        print(f"{count:>6} {rate:>12,.0f} {micro:>12.2f} {load_ms:>9.1f}")


if __name__ == "__main__":
    main()
