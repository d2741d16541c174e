#!/usr/bin/env bash
# Layout rules the build relies on: nothing internal leaks into include/, every public
# header compiles on its own (C and C++), built-in packs see only the public headers.
set -u
SRC=${KILN_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "$SRC" || exit 1
passed=0 failed=0
check() {
    local name=$1; shift
    if ( "$@" ) >/tmp/kiln_layout_$$.log 2>&1; then
        echo "ok   $name"; passed=$((passed + 1))
    else
        echo "FAIL $name"; sed 's/^/    /' /tmp/kiln_layout_$$.log | head -n 20; failed=$((failed + 1))
    fi
    rm -f /tmp/kiln_layout_$$.log
}

no_internal_names_in_include() { ! grep -rn 'kiln__' include/; }

headers_compile_alone() {
    for h in include/kiln/*.h; do
        printf '#include <kiln/%s>\n' "$(basename "$h")" |
            cc -std=c11 -Wall -Wextra -Werror -Iinclude -fsyntax-only -x c - || { echo "$h (C)"; return 1; }
        printf '#define KILN_PLUGIN 1\n#include <kiln/%s>\n' "$(basename "$h")" |
            cc -std=c11 -Wall -Wextra -Werror -Iinclude -fsyntax-only -x c - || { echo "$h (plugin)"; return 1; }
        if command -v c++ >/dev/null; then
            printf '#include <kiln/%s>\n' "$(basename "$h")" |
                c++ -Wall -Iinclude -fsyntax-only -x c++ - || { echo "$h (C++)"; return 1; }
        fi
    done
}

packs_use_public_headers_only() {
    ! grep -rnE '#include "(\.\./)*(engine|kernels)/|#include "(json|graph|sched|registry|runtime|cache|value|util)/' nodes/
}

check "no kiln__ names in include/" no_internal_names_in_include
check "public headers compile on their own" headers_compile_alone
check "node packs include only public headers" packs_use_public_headers_only
echo "$passed passed, $failed failed"
test "$failed" -eq 0
