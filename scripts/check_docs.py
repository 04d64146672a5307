#!/usr/bin/env python3
"""Checks that the documentation cannot drift from the code and stays self-contained.

Fails (exit 1, one line per problem) when:
- a property name in schemas/config.schema.json is not in docs/configuration.md inside
  backticks (alone, as `name`, or as a segment of a key path, as in `routing.semantic.name`),
  or a key path in the first column of one of its tables names a property the schema lacks;
- a relative link in README.md or docs/*.md points to a file that does not exist, or its
  `#fragment` to no heading of that file;
- README.md, docs/, scripts/ or examples/ refer to ../shared or /work/shared (the repository
  must stand alone), or README.md or docs/ call the Go gateway "the anchor";
- README.md has 300 lines or more.

Stdlib only. Usage: python3 scripts/check_docs.py [REPO_ROOT]
"""

import json
import pathlib
import re
import sys

ROOT = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else pathlib.Path(__file__).resolve().parents[1])
README_MAX_LINES = 300

problems = []


def schema_properties(node, found):
    """Every property name, walking properties, definitions/$defs, items and combinators."""
    if isinstance(node, list):
        for item in node:
            schema_properties(item, found)
        return found
    if not isinstance(node, dict):
        return found
    for name, sub in (node.get("properties") or {}).items():
        found.add(name)
        schema_properties(sub, found)
    for key in ("definitions", "$defs", "patternProperties"):
        for sub in (node.get(key) or {}).values():
            schema_properties(sub, found)
    for key in ("items", "additionalProperties", "not", "if", "then", "else", "oneOf", "anyOf", "allOf", "prefixItems"):
        if key in node:
            schema_properties(node[key], found)
    return found


def without_code_blocks(text):
    """The text with fenced code blocks blanked (line numbers kept)."""
    out, fence = [], False
    for line in text.split("\n"):
        if line.lstrip().startswith("```"):
            fence = not fence
            out.append("")
        else:
            out.append("" if fence else line)
    return out


def slug(heading):
    """GitHub's heading id: lowercase, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"`|\*\*|\*|_(?=\W)|(?<=\W)_", "", heading.strip().lower())
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def heading_ids(path):
    ids, seen = set(), {}
    for line in without_code_blocks(path.read_text(encoding="utf-8")):
        m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if m:
            base = slug(m.group(1))
            n = seen.get(base, 0)
            seen[base] = n + 1
            ids.add(base if n == 0 else f"{base}-{n}")
    return ids


def check_schema_coverage():
    schema = json.loads((ROOT / "schemas/config.schema.json").read_text(encoding="utf-8"))
    text = (ROOT / "docs/configuration.md").read_text(encoding="utf-8")
    mentioned = set()
    for span in re.findall(r"`([^`\n]+)`", text):
        mentioned.update(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", span))
    properties = schema_properties(schema, set())
    for name in sorted(properties):
        if name not in mentioned:
            problems.append(f"docs/configuration.md: config property `{name}` (schemas/config.schema.json) is not documented")
    # The other way: a documented key that no longer exists. Only key paths in a table's first
    # column (`routing.semantic.threshold`, `…rules[].route`); values and file names are not keys.
    top = set(schema.get("properties", {}))
    for number, line in enumerate(without_code_blocks(text), 1):
        if not line.startswith("|"):
            continue
        for span in re.findall(r"`([^`]+)`", line.split("|")[1]):
            if not re.fullmatch(r"[a-z_.…*\[\]]+", span):
                continue
            names = re.findall(r"[a-z_]+", span)
            if not (span.startswith("…") or names[0] in top):
                continue
            for name in names:
                if name not in properties:
                    problems.append(f"docs/configuration.md:{number}: `{span}` names `{name}`, which the schema does not have")


def check_links(doc):
    rel = doc.relative_to(ROOT)
    for number, line in enumerate(without_code_blocks(doc.read_text(encoding="utf-8")), 1):
        line = re.sub(r"`[^`]*`", "", line)
        for target in re.findall(r"\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)", line):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):
                continue
            path_part, _, fragment = target.partition("#")
            dest = (doc.parent / path_part).resolve() if path_part else doc
            try:
                shown = dest.relative_to(ROOT).as_posix()
            except ValueError:
                problems.append(f"{rel}:{number}: link to {target} leaves the repository")
                continue
            if not dest.exists():
                problems.append(f"{rel}:{number}: link to {target}: {shown} does not exist")
                continue
            if fragment and dest.suffix == ".md" and fragment not in heading_ids(dest):
                problems.append(f"{rel}:{number}: link to {target}: no heading #{fragment} in {shown}")


def check_words(doc, anchor_too):
    rel = doc.relative_to(ROOT)
    for number, line in enumerate(doc.read_text(encoding="utf-8", errors="replace").split("\n"), 1):
        if "../shared" in line or "/work/shared" in line:
            problems.append(f"{rel}:{number}: refers to a file outside the repository: {line.strip()}")
        # YAML anchors are fine; the Go gateway is openziti/llm-gateway, never "the anchor".
        if anchor_too and re.search(r"\bthe anchor\b(?!\s+(?:name|node|of\b))|\banchor's\b", line, re.I):
            problems.append(f"{rel}:{number}: says \"the anchor\"; write openziti/llm-gateway (the Go gateway)")


def main():
    readme = ROOT / "README.md"
    docs = sorted((ROOT / "docs").glob("*.md"))
    check_schema_coverage()
    for doc in [readme, *docs]:
        check_links(doc)
        check_words(doc, anchor_too=True)
    for folder in ("scripts", "examples"):
        for path in sorted(p for p in (ROOT / folder).rglob("*") if "__pycache__" not in p.parts):
            if path.is_file() and path.resolve() != pathlib.Path(__file__).resolve():
                check_words(path, anchor_too=False)
    lines = len(readme.read_text(encoding="utf-8").splitlines())
    if lines >= README_MAX_LINES:
        problems.append(f"README.md: {lines} lines; keep it under {README_MAX_LINES} and move detail to docs/")
    for problem in problems:
        print(problem)
    if problems:
        print(f"check_docs: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    print(f"check_docs: ok (README.md {lines} lines, {len(docs)} files in docs/)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
