#!/usr/bin/env bash
# Mutation testing of the lesson modules and the container: does the test suite notice when the
# code is broken? Not run by CI (minutes to an hour on 2 cores). Configured in pyproject.toml,
# [tool.mutmut] (which modules are mutated, which test files run).
#
#   .ci/mutmut.sh                                 every configured module
#   .ci/mutmut.sh 'nctutor.quant.deltasigma.*'    one module's mutants (a glob of mutant names)
#   .venv/bin/mutmut show NAME                    the diff of one surviving mutant
#   rm -rf mutants                                when done (the mutated copy of the package)
#
# A survivor is a change to the code that no selected test notices: a missing test, or an
# equivalent mutant (one that does not change what the code computes).
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1  # one thread per test process: two busy cores are not oversubscribed
# the tests run inside ./mutants, where ../shared/data is no longer beside the package
if [ -z "${NCTUTOR_DATA:-}" ] && [ -d ../shared/data ]; then
    export NCTUTOR_DATA="$(cd ../shared/data && pwd)"
fi
.venv/bin/mutmut run --max-children "${MUTMUT_CHILDREN:-1}" "$@"
.venv/bin/mutmut results
