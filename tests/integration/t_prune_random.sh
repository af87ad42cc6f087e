# t_prune_random.sh: runs t_prune_random.py, the seeded random test of prune
# over months of backups (SEED, BUDGET, MIN_SERIES, VERBOSE pass through).
. "$T_SRCDIR/lib.sh"

prune_random() {
	command -v python3 >/dev/null 2>&1 || skip "python3 is not installed"
	VB_TIMEOUT=$VB_TIMEOUT python3 "$T_SRCDIR/t_prune_random.py" ||
		fail "t_prune_random.py failed (its message is above)"
}

tcase prune_random prune_random
