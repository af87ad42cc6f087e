# t_chain_random.sh: runs t_chain_random.py, the seeded random test of backup
# sets (SEED, RUNS, BUDGET, SETS, FAULTS, VERBOSE pass through; see the .py).
. "$T_SRCDIR/lib.sh"

chain_random() {
	command -v python3 >/dev/null 2>&1 || skip "python3 is not installed"
	VB_TIMEOUT=$VB_TIMEOUT python3 "$T_SRCDIR/t_chain_random.py" ||
		fail "t_chain_random.py failed (its message is above)"
}

tcase chain_random chain_random
