"""Function names as a person reads them, and as a signature compares them.

`demangle` turns a C++ (Itanium `_Z...`) or Rust (legacy `_ZN...17h<hash>E` and v0
`_R...`) symbol into source spelling with demumble's demanglers (pydemumble, pinned
in pyproject.toml: LLVM's, plus Rust's legacy escapes, whose hash it drops); any
other name comes back as it is (GDB demangles by itself;
pyelftools and the model's own ELF reader hand back what the symbol table holds).

`normalise` is what a signature compares, never damaging a name (Socorro's rules for
C++ and Rust, and Go's own spelling):

- demangled first, so `_ZSt9terminatev` is `std::terminate`, never `ZSt9terminatev`;
- glibc's hidden alias prefix `__GI_` goes, and the leading underscores of a C name
  that starts with two of them (names reserved to the C library: `___pthread_mutex_lock`
  and `__pthread_mutex_lock` are one function); a single underscore stays (`_Exit`,
  `_start`, `_int_free` are not `Exit`, `start`, `int_free`);
- compiler clone suffixes go (`.cold`, `.isra.0`, `.constprop.1`, `.part.2`, and the
  demangler's ` [clone .cold]` and ` (.cold)`);
- C++ and Rust: the argument list and trailing qualifiers go (not an operator's own
  parentheses), templates collapse to `<T>` (a Rust `<A as Trait>` qualified path is
  kept, its own generics collapsed), `(anonymous namespace)` stays, a Rust legacy
  `::h<16 hex>` hash goes;
- Go: the name as the runtime prints it, receiver and closure suffix kept
  (`main.(*T).M.func2`); an assembly function's `.abi0` ABI-wrapper suffix goes.
"""

from __future__ import annotations

import functools
import re

_GI_PREFIX = re.compile(r"^__GI_")
_CLONE_SUFFIX = re.compile(r"\.(cold|isra|constprop|part|lto_priv|llvm)(\.\d+)*$")
_DEMANGLED_CLONE = re.compile(r"\s*(\[clone [^\]]*\]|\(\.(cold|isra|constprop|part|lto_priv)[^)]*\))\s*$")
_RUST_HASH = re.compile(r"::h[0-9a-f]{16}$")
_GO_ABI = re.compile(r"\.abi(0|internal)$")
_QUALIFIERS = re.compile(r"(\s+(const|volatile|&|&&|noexcept))+$")


@functools.cache
def _demangler():
    try:
        import pydemumble
    except ImportError:  # a Python without the venv's packages: names stay mangled
        return None
    return pydemumble.demangle


@functools.lru_cache(maxsize=8192)
def demangle(name: str) -> str:
    """The source spelling of a C++ or Rust symbol; any other name unchanged."""
    if not name.startswith(("_Z", "_R", "__Z")):
        return name
    demangler = _demangler()
    if demangler is None:
        return name
    try:
        result = demangler(name)
    except (ValueError, TypeError):
        return name
    return result or name


def is_cxx_or_rust(name: str) -> bool:
    """Spelled as C++ or Rust spell a path (`::`), not Go (`pkg.F`) or C."""
    return "::" in name or name.startswith("<")


def _matching(text: str, start: int, open_: str, close: str) -> int:
    """The index of the bracket closing the one at text[start], or -1."""
    depth = 0
    for i in range(start, len(text)):
        if text[i] == open_:
            depth += 1
        elif text[i] == close:
            depth -= 1
            if depth == 0:
                return i
    return -1


def _after_operator(text: str, i: int) -> bool:
    return text[:i].rstrip().endswith("operator") or text[:i].endswith(("operator<", "operator-"))


def collapse_templates(text: str) -> str:
    """Every template argument list `<...>` (after a name) becomes `<T>`; a Rust
    qualified path `<Type>` or `<A as Trait>` keeps its words, its generics collapsed."""
    out = []
    i = 0
    while i < len(text):
        char = text[i]
        if char == "<" and not _after_operator(text, i):
            end = _matching(text, i, "<", ">")
            if end < 0:
                out.append(text[i:])
                break
            inner = text[i + 1 : end]
            if i == 0 or not (text[i - 1].isalnum() or text[i - 1] in "_>"):
                # Rust's qualified path (`<Type>::f`, `<A as Trait>::f`): the words stay
                out.append("<" + collapse_templates(inner) + ">")
            else:
                out.append("<T>")
            i = end + 1
            continue
        out.append(char)
        i += 1
    return "".join(out)


def drop_arguments(text: str) -> str:
    """`f(int, char const*) const` -> `f`; `operator()(int)` -> `operator()`."""
    text = _QUALIFIERS.sub("", text.rstrip())
    if not text.endswith(")"):
        return text
    depth = 0
    for i in range(len(text) - 1, -1, -1):
        if text[i] == ")":
            depth += 1
        elif text[i] == "(":
            depth -= 1
            if depth == 0:
                if text[:i].endswith("operator()") or i == 0 or text[:i].endswith("(anonymous namespace"):
                    return text if i == 0 else text[:i]
                return text[:i]
    return text


def _strip_clones(name: str) -> str:
    while True:
        stripped = _DEMANGLED_CLONE.sub("", _CLONE_SUFFIX.sub("", name))
        if stripped == name:
            return name
        name = stripped


def normalise(name: str) -> str:
    """The name a signature compares (see the module's doc)."""
    demangled = _strip_clones(demangle(_strip_clones(name)))
    was_mangled, name = demangled != _strip_clones(name), demangled
    if was_mangled or is_cxx_or_rust(name):
        name = _RUST_HASH.sub("", drop_arguments(name))
        return collapse_templates(name)
    name = _GO_ABI.sub("", _GI_PREFIX.sub("", name))
    if name.startswith("__") and re.fullmatch(r"[A-Za-z0-9_]+", name):
        name = name.lstrip("_") or name
    return name


def go_package(name: str) -> str | None:
    """The import path of a Go function's package (`main`, `sync`,
    `github.com/x/y`), or None for a name that is not Go's (`pkg.F`)."""
    if is_cxx_or_rust(name) or "." not in name:
        return None
    slash = name.rfind("/")
    dot = name.find(".", slash + 1)
    return name[:dot] if dot > 0 else None


def go_is_user(name: str) -> bool:
    """A Go function of the program's own code: package main, or a package whose import
    path starts with a domain (the standard library's never has a dot: `sync`,
    `internal/poll`, `runtime`)."""
    package = go_package(name)
    if package is None:
        return False
    return package == "main" or "." in package.split("/", 1)[0]


RUST_LIBRARY_CRATES = frozenset(
    ["core", "std", "alloc", "panic_unwind", "panic_abort", "compiler_builtins", "backtrace",
     "gimli", "addr2line", "miniz_oxide", "hashbrown", "object", "rustc_demangle",
     "std_detect"]
)  # fmt: skip


def rust_crate(name: str) -> str | None:
    """The crate a demangled Rust path belongs to: `index::Parser::next_token` is
    index's; `<index::T as core::ops::Drop>::drop` is index's (the implementing type's);
    `<usize as core::slice::SliceIndex<T>>::index` is core's (a primitive's impl)."""
    if name.startswith("<"):
        end = _matching(name, 0, "<", ">")
        inner = name[1:end] if end > 0 else name[1:]
        self_type, _, trait = inner.partition(" as ")
        self_type = self_type.lstrip("&*").removeprefix("mut ").removeprefix("dyn ")
        if "::" in self_type:
            return self_type.split("::", 1)[0].lstrip("<")
        return trait.split("::", 1)[0] if "::" in trait else None
    return name.split("::", 1)[0] if "::" in name else None
