#!/usr/bin/env python3
"""Generates nodes/sd/unicode_tables.h: the Unicode character data the CLIP tokenizer needs.

The tokenizer reproduces the Hugging Face CLIP pipeline (NFC, lowercase, a regex over \\p{L} and
\\p{N}) and ComfyUI's prompt parsing (Python's float() and str.split()), so it needs general
categories, canonical decompositions and compositions, combining classes, simple and special
lowercase mappings, the Cased / Case_Ignorable sets of the final-sigma rule, Python's notion of
whitespace and the decimal digits. All of it is derived from Python's unicodedata and str
methods of the interpreter that runs this script (its Unicode version is written into the
header). Usage: python3 tools/gen_unicode_tables.py > nodes/sd/unicode_tables.h
"""
import sys
import unicodedata

MAX_CP = 0x110000


def is_surrogate(cp):
    return 0xD800 <= cp <= 0xDFFF


def ranges(pred):
    """Sorted [lo, hi] ranges of the code points for which pred holds."""
    out = []
    start = None
    for cp in range(MAX_CP + 1):
        ok = cp < MAX_CP and not is_surrogate(cp) and pred(cp)
        if ok and start is None:
            start = cp
        elif not ok and start is not None:
            out.append((start, cp - 1))
            start = None
    return out


def emit_ranges(name, rs, comment):
    print(f"/* {comment} ({len(rs)} ranges) */")
    print(f"static const sd_uni_range_t {name}[] = {{")
    line = "   "
    for lo, hi in rs:
        item = f" {{0x{lo:X}, 0x{hi:X}}},"
        if len(line) + len(item) > 96:
            print(line)
            line = "   "
        line += item
    print(line)
    print("};")
    print()


def emit_u32(name, values, comment):
    print(f"/* {comment} ({len(values)} entries) */")
    print(f"static const uint32_t {name}[] = {{")
    line = "   "
    for v in values:
        item = f" 0x{v:X},"
        if len(line) + len(item) > 96:
            print(line)
            line = "   "
        line += item
    print(line)
    print("};")
    print()


def lower_tables():
    """Simple one-to-one lowercase mappings as runs {lo, hi, delta, stride}; the one special
    (one-to-many, context-free) mapping of U+0130 is checked and handled in C."""
    single = {}
    for cp in range(MAX_CP):
        if is_surrogate(cp) or cp == 0x3A3:
            continue  # U+03A3 depends on context (final sigma): handled in C
        low = chr(cp).lower()
        if low == chr(cp):
            continue
        if len(low) != 1:
            assert cp == 0x130 and low == "i\u0307", (hex(cp), low)
            continue
        single[cp] = ord(low) - cp
    assert chr(0x3A3).lower() == "\u03c3"
    runs = []
    done = set()
    for lo in sorted(single):
        if lo in done:
            continue
        delta = single[lo]
        # Try stride 1 and stride 2 runs with the same delta; keep the longer.
        best = (lo, 1, 1)
        for stride in (1, 2):
            hi = lo
            # A run's [lo, hi] range must not contain code points mapped by another run, so
            # that C can binary-search disjoint ranges.
            while hi + stride in single and single[hi + stride] == delta \
                    and hi + stride not in done and (stride == 1 or hi + 1 not in single):
                hi += stride
            count = (hi - lo) // stride + 1
            if count > best[1]:
                best = (hi, count, stride)
        hi, count, stride = best
        runs.append((lo, hi, delta, stride))
        done.update(range(lo, hi + 1, stride))
    # Verify the runs reproduce the mapping exactly.
    check = {}
    for lo, hi, delta, stride in runs:
        for cp in range(lo, hi + 1, stride):
            assert cp not in check
            check[cp] = delta
    assert check == single
    runs.sort()
    for prev, cur in zip(runs, runs[1:]):
        assert prev[1] < cur[0]
    return runs


def sigma_sets():
    """Case_Ignorable, and Cased-but-not-Case_Ignorable, probed through Python's own final-sigma
    rule (the only place where these properties matter to lowercasing)."""
    ign = lambda cp: ("A" + chr(cp) + "\u03a3").lower().endswith("\u03c2") and not \
        (chr(cp) + "\u03a3").lower().endswith("\u03c2")
    cased_only = lambda cp: (chr(cp) + "\u03a3").lower().endswith("\u03c2")
    return ranges(ign), ranges(cased_only)


def ccc_ranges():
    out = []
    for cp in range(MAX_CP):
        if is_surrogate(cp):
            continue
        c = unicodedata.combining(chr(cp))
        if c == 0:
            continue
        if out and out[-1][1] == cp - 1 and out[-1][2] == c:
            out[-1][1] = cp
        else:
            out.append([cp, cp, c])
    return out


def canonical_decomp(cp):
    d = unicodedata.decomposition(chr(cp))
    if not d or d.startswith("<"):
        return None
    return [int(x, 16) for x in d.split()]


def full_decomp(cp):
    d = canonical_decomp(cp)
    if d is None:
        return [cp]
    out = []
    for x in d:
        out.extend(full_decomp(x))
    return out


def main():
    letters = ranges(lambda cp: unicodedata.category(chr(cp)).startswith("L"))
    numbers = ranges(lambda cp: unicodedata.category(chr(cp)).startswith("N"))
    pyspace = ranges(lambda cp: chr(cp).isspace())
    zeros = [cp for cp in range(MAX_CP) if not is_surrogate(cp)
             and unicodedata.decimal(chr(cp), -1) == 0]
    for z in zeros:
        for k in range(10):
            assert unicodedata.decimal(chr(z + k), -1) == k
    ndec = sum(1 for cp in range(MAX_CP) if not is_surrogate(cp)
               and unicodedata.decimal(chr(cp), -1) >= 0)
    assert ndec == 10 * len(zeros)
    lower = lower_tables()
    ignorable, cased = sigma_sets()
    ccc = ccc_ranges()

    # Hangul syllables are decomposed and composed algorithmically in C.
    decomp = []
    for cp in range(MAX_CP):
        if is_surrogate(cp) or 0xAC00 <= cp <= 0xD7A3:
            continue
        if canonical_decomp(cp) is not None:
            full = full_decomp(cp)
            assert unicodedata.normalize("NFD", chr(cp)) == "".join(map(chr, full))
            decomp.append((cp, full))
    max_len = max(len(f) for _, f in decomp)
    compose = []
    for cp, _ in decomp:
        d = canonical_decomp(cp)
        if len(d) == 2 and unicodedata.normalize("NFC", chr(d[0]) + chr(d[1])) == chr(cp) \
                and unicodedata.combining(chr(d[0])) == 0:
            compose.append((d[0], d[1], cp))
    compose.sort()
    # The fast path in C skips normalisation when every code point is below U+0300; that is
    # only valid if nothing below U+0300 combines, reorders or changes under NFC.
    assert all(b >= 0x300 for _, b, _ in compose)
    assert all(lo >= 0x300 for lo, _, _ in ccc)
    for cp in range(0x300):
        assert unicodedata.normalize("NFC", chr(cp)) == chr(cp)

    print("/* Generated by tools/gen_unicode_tables.py from Python's unicodedata "
          f"(Unicode {unicodedata.unidata_version}).")
    print(" * Do not edit: re-run the script instead. Ranges are sorted and inclusive. */")
    print("#ifndef SD_UNICODE_TABLES_H")
    print("#define SD_UNICODE_TABLES_H")
    print()
    print("#include <stdint.h>")
    print()
    print(f'#define SD_UNICODE_VERSION "{unicodedata.unidata_version}"')
    print(f"#define SD_UNI_DECOMP_MAX {max_len}")
    print()
    print("typedef struct sd_uni_range {")
    print("    uint32_t lo, hi;")
    print("} sd_uni_range_t;")
    print("typedef struct sd_uni_lower_run {")
    print("    uint32_t lo, hi;")
    print("    int32_t delta;")
    print("    uint32_t stride;")
    print("} sd_uni_lower_run_t;")
    print("typedef struct sd_uni_ccc_run {")
    print("    uint32_t lo, hi, ccc;")
    print("} sd_uni_ccc_run_t;")
    print("typedef struct sd_uni_decomp {")
    print("    uint32_t cp;")
    print("    uint16_t off, len;")
    print("} sd_uni_decomp_t;")
    print("typedef struct sd_uni_compose {")
    print("    uint32_t a, b, c;")
    print("} sd_uni_compose_t;")
    print()
    print("/* clang-format off */")
    emit_ranges("sd_uni_letter", letters, "General category L* (\\p{L})")
    emit_ranges("sd_uni_number", numbers, "General category N* (\\p{N})")
    emit_ranges("sd_uni_pyspace", pyspace, "Python str.isspace()")
    emit_u32("sd_uni_digit_zero", zeros, "Decimal digit zeros; digits 1-9 follow each")
    emit_ranges("sd_uni_case_ignorable", ignorable, "Case_Ignorable")
    emit_ranges("sd_uni_cased", cased, "Cased and not Case_Ignorable")

    print(f"/* Simple lowercase mappings as runs ({len(lower)} runs) */")
    print("static const sd_uni_lower_run_t sd_uni_lower_runs[] = {")
    for lo, hi, delta, stride in lower:
        print(f"    {{0x{lo:X}, 0x{hi:X}, {delta}, {stride}}},")
    print("};")
    print()
    print(f"/* Canonical combining classes other than 0 ({len(ccc)} runs) */")
    print("static const sd_uni_ccc_run_t sd_uni_ccc[] = {")
    line = "   "
    for lo, hi, c in ccc:
        item = f" {{0x{lo:X}, 0x{hi:X}, {c}}},"
        if len(line) + len(item) > 96:
            print(line)
            line = "   "
        line += item
    print(line)
    print("};")
    print()
    data = []
    entries = []
    for cp, full in decomp:
        entries.append((cp, len(data), len(full)))
        data.extend(full)
    assert len(data) < 65536
    print(f"/* Full canonical decompositions ({len(entries)} code points) */")
    print("static const sd_uni_decomp_t sd_uni_decomp[] = {")
    line = "   "
    for cp, off, n in entries:
        item = f" {{0x{cp:X}, {off}, {n}}},"
        if len(line) + len(item) > 96:
            print(line)
            line = "   "
        line += item
    print(line)
    print("};")
    print()
    emit_u32("sd_uni_decomp_data", data, "Decomposition code points, indexed by sd_uni_decomp")
    print(f"/* Primary composites by (first, second) ({len(compose)} pairs) */")
    print("static const sd_uni_compose_t sd_uni_compose[] = {")
    line = "   "
    for a, b, c in compose:
        item = f" {{0x{a:X}, 0x{b:X}, 0x{c:X}}},"
        if len(line) + len(item) > 96:
            print(line)
            line = "   "
        line += item
    print(line)
    print("};")
    print("/* clang-format on */")
    print()
    print("#endif")


if __name__ == "__main__":
    sys.exit(main())
