"""Fill the ``@name@`` placeholders of a deployment template.

The tests and ``bench/multinode.py`` render the very files an operator deploys, with
their own ports and folders. A placeholder left unfilled, or a value given for one the
template does not have, is an error: a template and its callers cannot drift apart.

    python -m deploy.render deploy/haproxy/haproxy.cfg.in bind=:80 \
        state_dir=/run/haproxy --node 10.0.0.11:8000 --node 10.0.0.12:8000

With ``--mirrors`` and each node's direct URL, it prints every node's ``DL_MIRRORS``
instead: the other nodes, so that a download manager that reached one node through the
balancer fetches the rest of the file from the others directly (docs/scaling.md):

    python -m deploy.render --mirrors --node-url http://10.0.0.11:8000 \
        --node-url http://10.0.0.12:8000 --node-url http://10.0.0.13:8000
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from service.sansio.mirrors import parse_mirrors

DEPLOY = Path(__file__).resolve().parent
HAPROXY_TEMPLATE = DEPLOY / "haproxy" / "haproxy.cfg.in"
NGINX_CACHE_TEMPLATE = DEPLOY / "nginx-cache" / "nginx.conf.in"
NGINX_OFFLOAD_TEMPLATE = DEPLOY / "nginx" / "download.conf.in"

_PLACEHOLDER = re.compile(r"@([a-z_]+)@")


def render(template: str, values: Mapping[str, str]) -> str:
    """``template`` with every ``@name@`` replaced by ``values[name]``."""
    wanted = set(_PLACEHOLDER.findall(template))
    missing = wanted - values.keys()
    unknown = values.keys() - wanted
    if missing or unknown:
        raise ValueError(f"placeholders missing: {sorted(missing)}, unknown: {sorted(unknown)}")
    return _PLACEHOLDER.sub(lambda match: values[match.group(1)], template)


def haproxy_servers(nodes: Sequence[str]) -> str:
    """One ``server`` line per node address (``host:port``), named node1, node2, ..."""
    return "\n".join(f"    server node{i} {node}" for i, node in enumerate(nodes, 1))


def node_mirrors(urls: Sequence[str]) -> list[str]:
    """The ``DL_MIRRORS`` of each node whose direct base URL (``scheme://host:port``) is
    in ``urls``: every other node's ``/files/``, starting with the next one round the
    list, so that the clients of each node prefer a different other node."""
    bases = [url.rstrip("/") + "/files/" for url in urls]
    if len(set(bases)) != len(bases):
        raise ValueError(f"a node URL is given twice: {list(urls)}")
    values = [",".join(bases[i + 1 :] + bases[:i]) for i in range(len(bases))]
    for value in values:
        parse_mirrors(value)  # the service's own check, here rather than at its start
    return values


def mirrors_env(urls: Sequence[str]) -> str:
    """One ``DL_MIRRORS=`` line per node, each under a comment naming the node."""
    lines = []
    for number, (url, value) in enumerate(zip(urls, node_mirrors(urls), strict=True), 1):
        lines += [f"# node{number}: {url}", f"DL_MIRRORS={value}"]
    return "\n".join(lines) + "\n"


def render_file(path: Path, values: Mapping[str, str], nodes: Sequence[str] = ()) -> str:
    """Render a template file; ``nodes`` fill its ``@servers@`` placeholder if it has one."""
    text = path.read_text()
    if "@servers@" in text:
        values = {**values, "servers": haproxy_servers(nodes)}
    return render(text, values)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("template", type=Path, nargs="?")
    parser.add_argument("values", nargs="*", help="name=value for each placeholder")
    parser.add_argument("--node", action="append", default=[], help="host:port of a node")
    parser.add_argument("--mirrors", action="store_true", help="print each node's DL_MIRRORS")
    parser.add_argument("--node-url", action="append", default=[], help="a node's direct URL")
    args = parser.parse_args(argv)
    if args.mirrors:
        if len(args.node_url) < 2:
            parser.error("--mirrors needs the --node-url of two nodes or more")
        sys.stdout.write(mirrors_env(args.node_url))
        return 0
    if args.template is None:
        parser.error("a template, or --mirrors")
    values = dict(item.split("=", 1) for item in args.values)
    sys.stdout.write(render_file(args.template, values, args.node))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
