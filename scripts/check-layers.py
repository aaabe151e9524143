#!/usr/bin/env python3
"""The source tree's import rules, checked from the text of src/.

1. No import cycle between files: every `crate::` and `super::` path a file
   names is resolved to the file that defines it, and the graph of files
   must have no cycle (Tarjan's strongly connected components).
2. No back edge between layers: a file may import only from its own layer
   or lower ones (LAYERS below; ARCHITECTURE.md explains the order).

Unit-test code is left out (a `#[cfg(test)] mod` to the end of its file, and
files included as one with `#[path]`): a test may use a higher layer to
build its inputs without that being a dependency of the code.

Standard library only; prints every offending edge and exits 1 on any.
"""
import os
import re
import sys

# Lowest first. A top-level module imports only from its own rank or lower.
LAYERS = [
    ["lean", "redact", "shutdown", "task"],
    ["agreement", "devnet"],
    ["cli"],
    ["config"],
    ["upstream"],
    ["served"],
    ["telemetry"],
    ["service"],
    ["http"],
    ["commands"],
]
RANK = {m: r for r, ms in enumerate(LAYERS) for m in ms}

SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")


def module_of(rel):
    """src-relative file path -> module path tuple ('config', 'convert')."""
    parts = rel[:-3].split(os.sep)
    if parts[-1] in ("mod", "lib", "main"):
        parts = parts[:-1]
    return tuple(parts)


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    text = re.sub(r'"(?:\\.|[^"\\])*"', '""', text)
    return re.sub(r"//[^\n]*", "", text)


def paths_in_use(tree, prefix=()):
    """Expands a `use` tree (`a::{b, c::{d}}`) into full paths."""
    tree = tree.strip()
    if not tree:
        return []
    depth, parts, cur = 0, [], ""
    for ch in tree:
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    out = []
    for part in (p.strip() for p in parts):
        if not part:
            continue
        m = re.match(r"^([\w:]*?)(?:::)?\{(.*)\}$", part, re.S)
        if m:
            head = tuple(x for x in m.group(1).split("::") if x)
            out += paths_in_use(m.group(2), prefix + head)
        else:
            name = part.split(" as ")[0].strip()
            out.append(prefix + tuple(x for x in name.split("::") if x and x != "self"))
    return out


def without_tests(text):
    m = re.search(r"#\[cfg\(test\)\]\s*mod\s+\w+\s*(\{|;)", text)
    return text[: m.start()] if m else text


def referenced(text, module):
    """Every module path a file names: through `crate::`, through `super::`,
    and through its own child modules (`mod pending;` then `pending::x`)."""
    text = strip_comments(without_tests(text))
    children = set(re.findall(r"^\s*(?:pub(?:\([\w:]+\))?\s+)?mod\s+(\w+)\s*;", text, re.M))
    roots = ["crate", "super"] + sorted(children)
    head = "(?:" + "|".join(roots) + ")"
    found = []
    for m in re.finditer(r"\buse\s+(" + head + r"(?:::super)*::[^;]*);", text, re.S):
        found += paths_in_use(m.group(1))
    for m in re.finditer(r"(?<![\w:])(" + head + r"(?:::super)*(?:::\w+)+)", text):
        found.append(tuple(m.group(1).split("::")))
    resolved = []
    for p in found:
        if p[0] == "crate":
            resolved.append(p[1:])
        elif p[0] == "super":
            # Each `super` leaves one module: a/b.rs is `a::b`, its `super`
            # is `a`; a/mod.rs is `a`, its `super` is the crate.
            supers = len(p) - len(tuple(x for x in p if x != "super"))
            rest = p[supers:]
            resolved.append(module[: max(len(module) - supers, 0)] + rest)
        else:
            resolved.append(module + p)
    return resolved


def main():
    files = {}
    included = set()
    for root, _, names in os.walk(SRC):
        for n in names:
            if n.endswith(".rs"):
                rel = os.path.relpath(os.path.join(root, n), SRC)
                files[rel] = open(os.path.join(root, n), encoding="utf-8").read()
    # `#[path = "x_tests.rs"] mod tests;` files belong to the file that includes them.
    owner = {}
    for rel, text in files.items():
        for m in re.finditer(r'#\[path\s*=\s*"([^"]+)"\]', text):
            inc = os.path.normpath(os.path.join(os.path.dirname(rel), m.group(1)))
            owner[inc] = rel
            included.add(inc)
    by_module = {}
    for rel in files:
        if rel not in included and rel != "main.rs":
            by_module[module_of(rel)] = rel

    def file_for(path):
        for n in range(len(path), -1, -1):
            if path[:n] in by_module:
                return by_module[path[:n]]
        return None

    edges = {}
    for rel, text in files.items():
        src = rel
        if rel in included or src == "main.rs":
            continue
        for p in referenced(text, module_of(src)):
            dst = file_for(p)
            if dst and dst != src:
                edges.setdefault(src, set()).add(dst)

    problems = []
    for a, bs in sorted(edges.items()):
        for b in sorted(bs):
            ta, tb = module_of(a)[:1], module_of(b)[:1]
            if not ta or not tb:
                continue
            ra, rb = RANK.get(ta[0]), RANK.get(tb[0])
            if ra is None or rb is None:
                problems.append(f"unranked top-level module in {a} -> {b}: add it to LAYERS")
            elif rb > ra:
                problems.append(f"back edge: {a} ({ta[0]}) imports {b} ({tb[0]}), a higher layer")

    # Tarjan's SCC over files.
    index, low, stack, on, sccs, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                sccs.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(by_module.values()):
        if v not in index:
            visit(v)
    for comp in sccs:
        problems.append("import cycle between files: " + " <-> ".join(comp))

    n_edges = sum(len(b) for b in edges.values())
    if problems:
        print("\n".join(problems))
        print(f"{len(problems)} problem(s) in {len(by_module)} modules, {n_edges} imports")
        return 1
    print(f"no import cycle and no back edge: {len(by_module)} modules, {n_edges} imports")
    return 0


if __name__ == "__main__":
    sys.exit(main())
